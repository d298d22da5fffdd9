"""The whole pipeline on the tiny CI config, through the report; and resuming a killed run.

Both tests really train (SLIDE and TensorFlow) in a temporary working directory, so they are
marked slow; CI runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from _pipeline import REPO, absolute_config, results_manifest, run_snakemake, snakemake_argv

from slide_bench.data import load_npz

FIGURES = (
    "convergence-time", "convergence-iter", "thread-scaling", "time-to-accuracy", "sampling",
)

pytestmark = pytest.mark.slow
# What the CI run produces, without its measurements (_pipeline.results_manifest): recorded from
# a run of the pipeline before its training became a script and its figures one rule each.
MANIFEST = REPO / "tests" / "fixtures" / "pipeline" / "ci-results-manifest.json"


@pytest.fixture(scope="module")
def ci_run(ci_local_run):
    """The CI config run once (shared with the SLURM test), then the report; returns
    (workdir, config)."""
    work, configfile = ci_local_run
    run_snakemake(work, configfile, "--report", str(work / "results" / "report.html"))
    return work, yaml.safe_load(configfile.read_text())


def grid_points(config):
    for dataset in config["datasets"]:
        for method, spec in config["methods"].items():
            for threads in spec.get("threads") or config["grid"]["threads"]:
                for seed in config["grid"]["seeds"]:
                    yield dataset, method, threads, seed


def test_outputs_keep_their_recorded_tables_rows_and_figures(ci_run):
    """Same tables with the same columns and rows (by grid point, peer and level), same per-run
    curves, figures and environment record as recorded. After a deliberate change of what the
    pipeline writes, record it again from a finished run of the CI config:
    python tests/_pipeline.py WORKDIR/results > tests/fixtures/pipeline/ci-results-manifest.json
    """
    work, _ = ci_run
    got, expected = results_manifest(work / "results"), json.loads(MANIFEST.read_text())
    assert got["tables"].keys() == expected["tables"].keys()
    for name, table in expected["tables"].items():
        assert got["tables"][name]["columns"] == table["columns"], name
        assert got["tables"][name]["rows"] == table["rows"], name
    assert got["curves"] == expected["curves"]
    assert got["figures"] == expected["figures"]
    assert got["environment"] == expected["environment"]


def test_one_finished_curve_per_grid_point(ci_run):
    work, config = ci_run
    points = list(grid_points(config))
    curves = sorted((work / "results" / "curves").glob("*/*.csv"))
    assert len(curves) == len(points)
    for dataset, method, threads, seed in points:
        stem = work / "results" / "curves" / dataset / f"{method}-cpu-t{threads}-s{seed}"
        sidecar = json.loads(stem.with_suffix(".json").read_text())
        assert sidecar["status"] in ("done", "timeout"), sidecar
        curve = pd.read_csv(stem.with_suffix(".csv"))
        assert curve["eval_set"].iloc[-1] == "full"
        assert (np.diff(curve["iteration"]) >= 0).all()
        assert (np.diff(curve["train_seconds"]) >= 0).all()


def test_summary_has_one_row_per_run_and_accuracy_above_chance(ci_run):
    work, config = ci_run
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert len(summary) == len(list(grid_points(config)))
    assert set(summary["status"]) <= {"done", "timeout"}
    assert (summary["peak_rss_mb"] > 0).all()
    assert (summary["seconds_per_epoch"] > 0).all()
    assert summary["target_p_at_1"].notna().all()
    for dataset in config["datasets"]:
        test = load_npz(work / "data" / "prepared" / dataset / "test.npz")
        labels_per_point = np.diff(test.y_indptr).mean()
        chance = labels_per_point / test.n_labels  # P@1 of a uniformly random guess
        best = summary.loc[summary["dataset"] == dataset, "best_p_at_1"].max()
        assert best > 3 * chance, (dataset, best, chance)
    # every run used the shared optimiser rule
    assert (summary["adam"] == config["optimizer"]["adam"]).all()
    # the headline: one row per dataset and peer of slide
    head = pd.read_csv(work / "results" / "headline.csv")
    peers = [m for m in config["methods"] if m != config["target"]["method"]]
    assert sorted(zip(head["dataset"], head["peer"], strict=True)) == sorted(
        (d, p) for d in config["datasets"] for p in peers)
    assert head["verdict"].str.contains("P@1").all()


def test_local_text_dataset_is_prepared_and_trained_without_code_changes(ci_run):
    work, config = ci_run
    stats = json.loads((work / "data" / "prepared" / "tiny-text" / "stats.json").read_text())
    assert (stats["train"]["points"], stats["train"]["features"], stats["train"]["labels"]) == (
        800, 1000, 200)
    assert stats["test"]["points"] == 200
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert (summary["dataset"] == "tiny-text").sum() == sum(
        1 for p in grid_points(config) if p[0] == "tiny-text")


def test_figures_and_report_exist(ci_run):
    work, config = ci_run
    for dataset in config["datasets"]:
        for figure in FIGURES:
            png = work / "results" / "plots" / dataset / f"{figure}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert (png.with_suffix(".svg")).read_text().lstrip().startswith("<?xml")
    report = (work / "results" / "report.html").read_text(errors="replace")
    for figure in FIGURES:
        assert f"{figure}.png" in report
    assert "summary.csv" in report and "environment.json" in report
    assert "headline.csv" in report and "time-to-level.csv" in report


def test_a_killed_training_job_resumes_from_its_checkpoint(tmp_path):
    def one_slow_run(config):
        config["datasets"] = {"tiny": config["datasets"]["tiny"]}
        config["methods"] = {"slide": config["methods"]["slide"]}
        config["methods"]["slide"].setdefault("set", {})["run.checkpoint_every_s"] = 0.5
        config["grid"].update(threads=[1], seeds=[0])
        config["budget"].update(epochs=50, time_budget=None, eval_every=4)

    configfile = absolute_config(tmp_path, one_slow_run)
    curve = tmp_path / "results" / "curves" / "tiny" / "slide-cpu-t1-s0.csv"
    work = tmp_path / "results" / "checkpoints" / "tiny" / "slide-cpu-t1-s0"
    proc = subprocess.Popen(
        snakemake_argv(tmp_path, configfile, "--cores", "1", str(curve.relative_to(tmp_path))),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while not list(work.glob("*.ckpt*")):
            assert proc.poll() is None, "the job ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
            time.sleep(0.2)
        # kill soon after the first checkpoint: the run is long (50 epochs) so it cannot finish
        # (and remove its checkpoint) before the kill, even on an idle machine
        time.sleep(0.3)
        partial = pd.read_csv(work / "curve.csv")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a hard kill: snakemake and the engine at once
        proc.wait()
    assert not curve.exists()
    assert list(work.glob("*.ckpt*")), "the checkpoint must survive the kill"

    run_snakemake(tmp_path, configfile, "--unlock")
    run_snakemake(tmp_path, configfile, "--cores", "1", "--rerun-incomplete",
                  str(curve.relative_to(tmp_path)))
    sidecar = json.loads(curve.with_suffix(".json").read_text())
    assert sidecar["status"] == "done" and sidecar["resumed"] is True
    final = pd.read_csv(curve)
    subset = final[final["eval_set"] == "subset"]
    # one curve from iteration 0: rows before the checkpoint kept, none repeated
    assert subset["iteration"].iloc[0] == 0 and (np.diff(subset["iteration"]) > 0).all()
    assert subset["iteration"].iloc[-1] > partial["iteration"].max()
    assert final["eval_set"].iloc[-1] == "full"


def test_gpu_runs_without_a_gpu_are_recorded_as_failed_and_the_pipeline_finishes(tmp_path):
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: the GPU run would really train")

    def cpu_and_gpu(config):
        config["datasets"] = {"tiny-text": config["datasets"]["tiny-text"]}
        config["methods"] = {"slide": config["methods"]["slide"],
                             "tf-full": config["methods"]["tf-full"]}
        config["grid"].update(devices=["cpu", "gpu"], threads=[1], seeds=[0])
        config["methods"]["tf-full"].update(devices=["gpu"], threads=[1])

    configfile = absolute_config(tmp_path, cpu_and_gpu)
    run_snakemake(tmp_path, configfile, "--cores", "1")
    summary = pd.read_csv(tmp_path / "results" / "summary.csv").set_index("method")
    assert summary.loc["tf-full", "device"] == "gpu"
    assert summary.loc["tf-full", "status"] == "failed"
    assert summary.loc["tf-full", "reason"].startswith("no GPU: error:")
    assert summary.loc["slide", "status"] in ("done", "timeout")
    # the level comes from the runs that did train; the headline says why tf-full is missing
    assert summary["target_p_at_1"].notna().all()
    head = pd.read_csv(tmp_path / "results" / "headline.csv").set_index("peer")
    assert head.loc["tf-full (gpu)", "verdict"].startswith("tf-full did not run: no GPU")
    for figure in FIGURES:
        assert (tmp_path / "results" / "plots" / "tiny-text" / f"{figure}.png").exists()
