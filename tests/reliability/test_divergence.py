"""Fault injection: a non-finite loss or weight stops that run as ``diverged``, at its iteration.

* the engine CLI with a huge learning rate: exit 0, sidecar ``diverged`` with the iteration, no
  final row, no checkpoint left, and a rerun does not train again;
* NaN injected into weights mid-run through the Python API (engine and TF baselines): a weight
  that feeds no loss is caught by the weight check at the next evaluation, a weight that feeds the
  loss by the loss check at the next step; the iteration in ``stop_reason`` is exact;
* the pipeline with one method configured to diverge finishes the other runs, and its summary and
  figures show the diverged run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from slide_bench.data import generate, save_npz
from slide_bench.harness import RunSettings, run
from slide_bench.runlog import read_sidecar
from slide_engine.engine import SlideConfig, SlideNetwork

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", 0)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, tiny):
    folder = tmp_path_factory.mktemp("tiny")
    save_npz(tiny[0], folder / "train.npz")
    save_npz(tiny[1], folder / "test.npz")
    return folder / "train.npz", folder / "test.npz"


def settings(**kw) -> RunSettings:
    base = dict(batch_size=64, epochs=1, eval_every=4, eval_points=200, seed=0,
                checkpoint_every_s=0.0, dataset="tiny")
    return RunSettings(**{**base, **kw})


def unused_feature(train) -> int:
    """A feature id no training point has (its first-layer weights never enter a loss)."""
    return int(np.flatnonzero(np.bincount(train.x_indices, minlength=train.n_features) == 0)[0])


def check_diverged(out: Path, iteration: int, what: str) -> None:
    side = read_sidecar(out.with_suffix(".json"))
    assert side["status"] == "diverged", side
    assert side["stop_reason"] == f"non-finite {what} at iteration {iteration}"
    assert side["iterations"] == iteration
    curve = pd.read_csv(out)
    assert (curve["eval_set"] == "subset").all(), "a diverged run has no final full-test row"
    assert curve["iteration"].max() < iteration
    assert not out.with_suffix(".ckpt.npz").exists()


@pytest.mark.slow
def test_engine_cli_huge_learning_rate_diverges_with_its_iteration(tiny_files, tmp_path):
    out = tmp_path / "curve.csv"
    argv = [sys.executable, "-m", "slide_engine", "train", "--train", str(tiny_files[0]),
            "--test", str(tiny_files[1]), "--out", str(out), "--epochs", "1",
            "--eval-every", "4", "--set", "lr=1e30", "--set", "run.checkpoint_every_s=0"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    side = read_sidecar(out.with_suffix(".json"))
    assert side["status"] == "diverged" and side["config"]["lr"] == 1e30
    iteration = side["iterations"]
    assert 1 <= iteration <= 16
    check_diverged(out, iteration, "loss")
    assert f"non-finite loss at iteration {iteration}" in proc.stderr
    # the same command again: the run is finished (diverged), nothing is retrained
    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already finished (diverged)" in again.stderr
    assert read_sidecar(out.with_suffix(".json")) == side


class _PoisonedSlide(SlideNetwork):
    """Writes NaN into weights right after step ``at``: one unused input weight, or all outputs."""

    def __init__(self, at: int, where: str, feature: int = 0, **kw) -> None:
        super().__init__(SlideConfig(), **kw)
        self.at, self.where, self.feature, self.steps = at, where, feature, 0

    def train_batch(self, rows):
        loss = super().train_batch(rows)
        self.steps += 1
        if self.steps == self.at:
            if self.where == "unused-weight":
                self.layers[0].w[self.feature, 0] = np.nan
            else:
                self.layers[-1].w[:] = np.nan
        return loss


@pytest.mark.parametrize(
    ("where", "at", "iteration", "what"),
    [("unused-weight", 5, 8, "weights"), ("output-layer", 5, 6, "loss")],
)
def test_engine_nan_injected_mid_run_stops_the_run(tiny, tmp_path, where, at, iteration, what):
    train, test = tiny
    model = _PoisonedSlide(at, where, unused_feature(train), seed=0)
    out = tmp_path / "curve.csv"
    res = run(model, train, test, settings(), out, {"poison": where})
    assert res.status == "diverged" and res.iterations == iteration
    check_diverged(out, iteration, what)


def _tf_trainable(lr: float = 1e-3):
    from baselines.config import BaselineConfig
    from baselines.trainable import TFSoftmaxTrainable

    return TFSoftmaxTrainable(BaselineConfig(lr=lr), seed=0)


@pytest.mark.parametrize(("where", "at", "iteration", "what"),
                         [("unused-weight", 5, 8, "weights"), ("huge-lr", None, None, "loss")])
def test_tf_baseline_divergence_is_recorded(tiny, tmp_path, where, at, iteration, what):
    train, test = tiny
    out = tmp_path / "curve.csv"
    if where == "huge-lr":
        model = _tf_trainable(lr=1e30)
    else:
        model = _tf_trainable()
        feature = unused_feature(train)
        step = model.train_batch

        def poisoned(rows, calls=[0]):  # noqa: B006 (a call counter)
            loss = step(rows)
            calls[0] += 1
            if calls[0] == at + 1:  # the harness's warm-up step is call 1
                w1 = model.net.variables["w1"]
                w1.assign(np.where(np.arange(w1.shape[0])[:, None] == feature, np.nan,
                                   w1.numpy()).astype(np.float32))
            return loss

        model.train_batch = poisoned
    res = run(model, train, test, settings(), out, {"case": where})
    assert res.status == "diverged"
    if iteration is None:
        iteration = res.iterations
        assert 1 <= iteration <= 16
    assert res.iterations == iteration
    check_diverged(out, iteration, what)


@pytest.mark.slow
def test_pipeline_finishes_the_other_runs_and_reports_the_diverged_one(tmp_path):
    config = {
        "datasets": {"tiny": {"synthetic": {"preset": "tiny", "seed": 0}}},
        "methods": {
            "slide": {"engine": "slide", "devices": ["cpu"]},
            "slide-diverges": {"engine": "slide", "devices": ["cpu"], "set": {"lr": 1e30}},
        },
        "grid": {"devices": ["cpu"], "threads": [1], "seeds": [0]},
        "budget": {"epochs": 1, "time_budget": None, "eval_every": 8, "eval_points": 256,
                   "batch_size": 64},
    }
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(configfile), "--cores", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
        # jobs run in tmp_path: make them use this checkout whatever an installed copy points at
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])},
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    summary = pd.read_csv(tmp_path / "results" / "summary.csv").set_index("method")
    assert summary.loc["slide", "status"] == "done"
    assert summary.loc["slide-diverges", "status"] == "diverged"
    reason = summary.loc["slide-diverges", "reason"]
    assert reason.startswith("non-finite loss at iteration ")
    side = json.loads(
        (tmp_path / "results" / "curves" / "tiny" / "slide-diverges-cpu-t1-s0.json").read_text()
    )
    assert side["status"] == "diverged" and reason.endswith(f" {side['iterations']}")
    # the summary says where the run stopped (not the iteration of its last evaluation row)
    assert summary.loc["slide-diverges", "iterations"] == side["iterations"]
    seconds = summary.loc["slide-diverges", "train_seconds"]
    assert seconds == pytest.approx(side["train_seconds"], rel=1e-3)
    assert summary.loc["slide", "iterations"] == 32
    for figure in ("convergence-time", "convergence-iter", "thread-scaling", "time-to-accuracy",
                   "sampling"):
        assert (tmp_path / "results" / "plots" / "tiny" / f"{figure}.png").stat().st_size > 0
    curves = pd.read_csv(tmp_path / "results" / "curves.csv")
    assert set(curves["method"]) == {"slide", "slide-diverges"}
    # the diverged peer keeps its headline row
    head = pd.read_csv(tmp_path / "results" / "headline.csv")
    assert list(head["peer"]) == ["slide-diverges"]
