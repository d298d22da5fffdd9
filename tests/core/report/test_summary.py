"""Summary rows (slide_bench.report.summary) and run publication (report.runs) by hand."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from slide_bench.report.runs import FinalizeError, finalize_run
from slide_bench.report.summary import (
    SUMMARY_COLUMNS,
    RunRecord,
    load_run,
    summarize,
    summarize_run,
    target_p_at_1,
    tidy_curves,
)
from slide_bench.runlog import CURVE_COLUMNS


def curve(p1, seconds, iterations, final_p1, mult=None, method="engine-name"):
    """A curve: subset rows at the given points, then the final full-test row."""
    rows = []
    for i, (p, t, it) in enumerate(zip(p1, seconds, iterations, strict=True)):
        row = dict(method=method, dataset="x", device="cpu", threads=1, seed=0, epoch=0,
                   iteration=it, train_seconds=t, p_at_1=p, p_at_3=p / 2, p_at_5=p / 4,
                   loss=1.0, eval_set="subset", eval_points=100)
        if mult is not None:
            row["mult_fraction"] = mult[i]
        rows.append(row)
    final = dict(rows[-1], eval_set="full", eval_points=1000, p_at_1=final_p1,
                 p_at_3=final_p1 / 2, p_at_5=final_p1 / 4)
    return pd.DataFrame([*rows, final])


def record(method="slide", seed=0, status="done", frame=None, rss=512.0, n_train=100,
           batch=10, dataset="x", threads=2):
    key = dict(dataset=dataset, method=method, device="cpu", threads=threads, seed=seed)
    sidecar = {"status": status, "stop_reason": "why", "startup_seconds": 1.5,
               "config": {"run": {"batch_size": batch}}}
    frame = frame if frame is not None else pd.DataFrame(columns=list(CURVE_COLUMNS))
    return RunRecord(key, frame, sidecar, rss, n_train)


def test_summary_row_of_a_finished_run():
    frame = curve([0.1, 0.5, 0.4], [0.0, 4.0, 8.0], [0, 10, 20], 0.45, mult=[1.0, 0.02, 0.04])
    row = summarize_run(record(frame=frame), target=0.45)
    assert row["status"] == "done" and row["reason"] == "why"
    assert row["iterations"] == 20
    # 100 training points in batches of 10 = 10 iterations per epoch
    assert row["epochs"] == pytest.approx(2.0)
    assert row["train_seconds"] == pytest.approx(8.0)
    assert row["seconds_per_epoch"] == pytest.approx(4.0)
    assert row["final_p_at_1"] == pytest.approx(0.45)
    assert row["final_p_at_5"] == pytest.approx(0.45 / 4)
    assert row["best_p_at_1"] == pytest.approx(0.5)  # the subset maximum, not the final row
    assert row["best_p_at_3"] == pytest.approx(0.25)
    assert row["time_to_target_s"] == pytest.approx(4.0)
    assert row["peak_rss_mb"] == 512.0
    assert row["startup_seconds"] == 1.5
    # mean over training-time rows, the untrained iteration-0 row excluded
    assert row["mult_fraction"] == pytest.approx(0.03)
    assert math.isnan(row["active_mean"])
    assert set(row) == set(SUMMARY_COLUMNS)


def test_summary_row_of_a_partial_epoch_and_an_unreached_target():
    frame = curve([0.0, 0.2], [0.0, 3.0], [0, 5], 0.2)
    row = summarize_run(record(frame=frame), target=0.9)
    assert row["epochs"] == pytest.approx(0.5)
    assert row["seconds_per_epoch"] == pytest.approx(6.0)
    assert math.isnan(row["time_to_target_s"])


def test_summary_row_of_a_failed_run_keeps_its_reason_and_has_no_metrics():
    rec = record(method="tf-full", status="failed")
    rec.sidecar["stop_reason"] = "no GPU: error: GPU requested but none visible"
    row = summarize_run(rec, target=0.3)
    assert row["status"] == "failed"
    assert row["reason"].startswith("no GPU")
    for col in ("final_p_at_1", "best_p_at_1", "seconds_per_epoch", "time_to_target_s"):
        assert math.isnan(row[col])


def test_target_is_the_headline_fraction_of_the_best_any_method_reached():
    ref0 = record("tf-full", 0, frame=curve([0.1, 0.5], [0, 1], [0, 1], 0.5))
    ref1 = record("tf-full", 1, frame=curve([0.1, 0.6], [0, 1], [0, 1], 0.6))
    other = record("slide", 0, frame=curve([0.1, 0.8], [0, 1], [0, 1], 0.9))
    elsewhere = record("tf-full", 0, frame=curve([0.1, 0.99], [0, 1], [0, 1], 0.9), dataset="y")
    failed = record("tf-full", 2, status="failed")
    runs = [ref0, ref1, other, elsewhere, failed]
    # the best subset P@1 of any method on "x" is slide's 0.8 (its final row does not count)
    assert target_p_at_1(runs, "x", {"headline": 0.9}) == pytest.approx(0.72)
    assert math.isnan(target_p_at_1([failed, elsewhere], "x", {"headline": 0.9}))


def test_summarize_gives_one_row_per_run_in_order_with_the_dataset_target():
    ref = record("tf-full", 0, frame=curve([0.1, 0.5], [0, 2], [0, 10], 0.5))
    fast = record("slide", 0, frame=curve([0.1, 0.48, 0.5], [0, 1, 2], [0, 10, 20], 0.5))
    fast.sidecar["optimizer"] = {"adam": "lazy", "lr": 0.01}
    table = summarize([ref, fast], {"headline": 0.95})
    assert list(table.columns) == list(SUMMARY_COLUMNS)
    assert list(table["method"]) == ["tf-full", "slide"]
    assert table["adam"].tolist() == ["", "lazy"]
    assert table["target_p_at_1"].tolist() == pytest.approx([0.475, 0.475])
    assert table["time_to_target_s"].tolist() == pytest.approx([2.0, 1.0])


def test_tidy_curves_label_rows_with_the_grid_point_and_skip_failed_runs():
    frame = curve([0.1, 0.5], [0, 1], [0, 1], 0.5, method="slide")
    tidy = tidy_curves([record("slide-mongoose", frame=frame), record("tf-full", status="failed")])
    assert len(tidy) == 3
    assert set(tidy["method"]) == {"slide-mongoose"}
    assert set(tidy["threads"]) == {2}
    assert list(tidy.columns[: len(CURVE_COLUMNS)]) == list(CURVE_COLUMNS)


def test_load_run_reads_benchmark_memory_and_treats_a_missing_sidecar_as_failed(tmp_path):
    frame = curve([0.1, 0.5], [0, 1], [0, 1], 0.5)
    frame.to_csv(tmp_path / "c.csv", index=False)
    (tmp_path / "c.json").write_text(json.dumps({"status": "timeout", "stop_reason": "budget"}))
    (tmp_path / "b.tsv").write_text("s\th:m:s\tmax_rss\tmax_vms\n1.0\t0:00:01\t321.5\t900\n")
    key = dict(dataset="x", method="slide", device="cpu", threads=1, seed=0)
    rec = load_run(key, tmp_path / "c.csv", tmp_path / "c.json", tmp_path / "b.tsv", 100)
    assert rec.peak_rss_mb == 321.5 and rec.sidecar["status"] == "timeout"
    assert len(rec.curve) == 3
    missing = load_run(key, tmp_path / "c.csv", tmp_path / "nope.json", None, 100)
    assert missing.sidecar["status"] == "failed" and math.isnan(missing.peak_rss_mb)


def test_finalize_publishes_a_finished_run(tmp_path):
    work = tmp_path / "work" / "curve.csv"
    work.parent.mkdir()
    work.write_text("method\nslide\n")
    work.with_suffix(".json").write_text(json.dumps({"status": "done"}))
    finalize_run(0, tmp_path / "log", work, tmp_path / "out.csv", tmp_path / "out.json")
    assert (tmp_path / "out.csv").read_text() == "method\nslide\n"
    assert json.loads((tmp_path / "out.json").read_text())["status"] == "done"


def test_finalize_records_a_run_without_gpu_as_failed_with_the_baseline_message(tmp_path):
    log = tmp_path / "log"
    log.write_text("starting\nerror: GPU requested but none is visible\n\n")
    finalize_run(3, log, tmp_path / "w.csv", tmp_path / "out.csv", tmp_path / "out.json")
    side = json.loads((tmp_path / "out.json").read_text())
    assert side["status"] == "failed"
    assert side["stop_reason"] == "no GPU: error: GPU requested but none is visible"
    assert pd.read_csv(tmp_path / "out.csv").empty
    assert list(pd.read_csv(tmp_path / "out.csv").columns) == list(CURVE_COLUMNS)


def test_finalize_fails_the_job_on_other_errors_and_on_an_unfinished_run(tmp_path):
    log = tmp_path / "log"
    log.write_text("error: train.txt, line 3: malformed\n")
    with pytest.raises(FinalizeError, match="malformed") as err:
        finalize_run(2, log, tmp_path / "w.csv", tmp_path / "o.csv", tmp_path / "o.json")
    assert err.value.exit_code == 2
    work = tmp_path / "w.csv"
    work.write_text("x\n")
    work.with_suffix(".json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(FinalizeError, match="finished"):
        finalize_run(0, log, work, tmp_path / "o.csv", tmp_path / "o.json")
    assert not (tmp_path / "o.csv").exists()
