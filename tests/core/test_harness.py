"""The training harness: clock, evaluation, resume after a crash, divergence, budgets."""

import numpy as np
import pandas as pd
import pytest
from _reference_model import SoftmaxRegression, make_dataset

from slide_bench.harness import OutputError, RunSettings, epoch_order, run
from slide_bench.runlog import read_sidecar

TIMING = ["train_seconds", "eval_seconds"]


@pytest.fixture(scope="module")
def data():
    return make_dataset(600, 60, 10, seed=1), make_dataset(200, 60, 10, seed=2)


def _settings(**kw):
    base = dict(
        batch_size=32,
        epochs=3,
        eval_every=5,
        eval_points=100,
        seed=3,
        checkpoint_every_s=0.0,
        dataset="toy",
    )
    base.update(kw)
    return RunSettings(**base)


def test_complete_run_learns_and_records(data, tmp_path):
    train, test = data
    out = tmp_path / "curve.csv"
    res = run(SoftmaxRegression(), train, test, _settings(), out, {"lr": 0.5})
    assert res.status == "done"
    df = pd.read_csv(out)
    n_batches = -(-600 // 32)
    assert res.iterations == 3 * n_batches
    assert df["eval_set"].iloc[-1] == "full" and df["eval_points"].iloc[-1] == 200
    assert (df["eval_set"].iloc[:-1] == "subset").all()
    assert df["iteration"].iloc[0] == 0 and df["train_seconds"].iloc[0] == 0
    assert df["train_seconds"].is_monotonic_increasing
    assert df["iteration"].is_unique or df["eval_set"].iloc[-1] == "full"
    # chance is 0.1 with 10 balanced labels; the toy problem is nearly separable
    assert df["p_at_1"].iloc[-1] > 0.8 > df["p_at_1"].iloc[0]
    side = read_sidecar(out.with_suffix(".json"))
    assert side["status"] == "done" and side["provenance"]["config_hash"]
    assert side["config"]["run"]["batch_size"] == 32
    assert not out.with_suffix(".ckpt.npz").exists()


def test_epoch_order_is_a_fixed_permutation():
    a = epoch_order(10, seed=5, epoch=2)
    assert sorted(a.tolist()) == list(range(10))
    np.testing.assert_array_equal(a, epoch_order(10, seed=5, epoch=2))
    assert not np.array_equal(a, epoch_order(10, seed=5, epoch=3))


def test_crash_then_resume_gives_the_uninterrupted_curve(data, tmp_path):
    train, test = data
    ref = tmp_path / "ref.csv"
    run(SoftmaxRegression(), train, test, _settings(), ref, {"lr": 0.5})
    out = tmp_path / "curve.csv"
    with pytest.raises(RuntimeError):
        run(SoftmaxRegression(crash_at=23), train, test, _settings(), out, {"lr": 0.5})
    assert out.with_suffix(".ckpt.npz").exists()
    assert read_sidecar(out.with_suffix(".json"))["status"] == "running"
    res = run(SoftmaxRegression(), train, test, _settings(), out, {"lr": 0.5})
    assert res.status == "done"
    a, b = pd.read_csv(ref), pd.read_csv(out)
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING))
    assert b["train_seconds"].is_monotonic_increasing


def test_corrupt_checkpoint_restarts_from_scratch(data, tmp_path):
    train, test = data
    ref = tmp_path / "ref.csv"
    run(SoftmaxRegression(), train, test, _settings(), ref, {"lr": 0.5})
    out = tmp_path / "curve.csv"
    with pytest.raises(RuntimeError):
        run(SoftmaxRegression(crash_at=23), train, test, _settings(), out, {"lr": 0.5})
    ckpt = out.with_suffix(".ckpt.npz")
    blob = bytearray(ckpt.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(blob))
    res = run(SoftmaxRegression(), train, test, _settings(), out, {"lr": 0.5})
    assert res.status == "done" and not read_sidecar(out.with_suffix(".json"))["resumed"]
    a, b = pd.read_csv(ref), pd.read_csv(out)
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING))


def test_checkpoint_of_another_config_is_not_used(data, tmp_path):
    train, test = data
    out = tmp_path / "curve.csv"
    with pytest.raises(RuntimeError):
        run(SoftmaxRegression(crash_at=23), train, test, _settings(), out, {"lr": 0.5})
    res = run(SoftmaxRegression(lr=0.1), train, test, _settings(), out, {"lr": 0.1})
    assert res.status == "done"
    assert not read_sidecar(out.with_suffix(".json"))["resumed"]


def test_divergence_is_recorded_not_raised(data, tmp_path):
    train, test = data
    out = tmp_path / "curve.csv"
    res = run(SoftmaxRegression(nan_at=7), train, test, _settings(), out, {})
    assert res.status == "diverged" and "iteration 7" in res.stop_reason
    side = read_sidecar(out.with_suffix(".json"))
    assert side["status"] == "diverged" and side["iterations"] == 7


def test_time_budget_stops_with_timeout(data, tmp_path):
    train, test = data
    out = tmp_path / "curve.csv"
    res = run(SoftmaxRegression(), train, test, _settings(epochs=1000, time_budget_s=0.05), out, {})
    assert res.status == "timeout"
    assert res.train_seconds >= 0.05
    assert pd.read_csv(out)["eval_set"].iloc[-1] == "full"


def test_finished_run_is_not_repeated(data, tmp_path):
    train, test = data
    out = tmp_path / "curve.csv"
    run(SoftmaxRegression(), train, test, _settings(), out, {"lr": 0.5})
    model = SoftmaxRegression()
    res = run(model, train, test, _settings(), out, {"lr": 0.5})
    assert res.status == "done" and model.prepared == 0
    assert len(res.curve) == len(pd.read_csv(out))


def test_unwritable_output_path_is_a_clear_error(data, tmp_path):
    train, test = data
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot write"):
        run(SoftmaxRegression(), train, test, _settings(), blocker / "c.csv", {})


def test_time_cadence_evaluates_once_per_interval_of_training_seconds(data, tmp_path):
    train, test = data
    out = tmp_path / "curve.csv"
    every = 0.01
    res = run(SoftmaxRegression(), train, test,
              _settings(epochs=1000, eval_every=None, eval_every_s=every, time_budget_s=0.1), out,
              {"lr": 0.5, "adam": "lazy"})
    subset = pd.read_csv(out).query("eval_set == 'subset'")
    t = subset["train_seconds"].to_numpy()[1:]  # after the untrained row
    # each evaluation is the first step past a new multiple of the interval: no interval is
    # evaluated twice, and epoch ends (19 batches each) are not evaluation points
    assert (np.diff(np.floor(t[:-1] / every)) >= 1).all()
    assert len(t) <= res.train_seconds / every + 2
    assert res.iterations > len(t)
    # the sidecar records the optimiser shared by the comparison
    assert read_sidecar(out.with_suffix(".json"))["optimizer"] == {"lr": 0.5, "adam": "lazy"}
