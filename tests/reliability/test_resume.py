"""Fault injection: training runs killed with SIGKILL at random moments resume exactly.

Every training CLI (the SLIDE engine, TF full softmax, TF sampled softmax) is started as a
subprocess on the tiny synthetic data with a checkpoint at every evaluation, killed with SIGKILL
after a seeded random delay, restarted with the same command, killed again, ... and finally run to
completion. The oracle is an uninterrupted run of the same command: all runs here are
bit-deterministic at one thread (checked by ``test_uninterrupted_runs_are_deterministic``), so

* after every kill the curve on disk is a prefix of the reference curve (every non-timing column
  equal) and the checkpoint on disk loads and verifies (atomic writes: never a torn file);
* a restart resumes from the checkpoint (sidecar ``resumed``), its training seconds start at the
  checkpointed value and only grow;
* the final curve equals the reference row for row: no gap, no duplicate iteration.

A corrupt checkpoint is reported as a warning in the log and the run restarts from scratch.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slide_bench.checkpoint import load_checkpoint
from slide_bench.data import generate, save_npz

REPO = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}
RUN_FLAGS = [
    "--threads", "1", "--seed", "3", "--eval-every", "4", "--dataset-name", "tiny",
    "--set", "run.checkpoint_every_s=0", "--set", "run.batch_size=64",
    "--set", "run.eval_points=200",
]
COMMANDS = {
    "slide": [sys.executable, "-m", "slide_engine", "train", "--epochs", "3"],
    "tf-full": [sys.executable, "-m", "baselines", "train", "--model", "full", "--device", "cpu",
                "--epochs", "2"],
    "tf-sampled": [sys.executable, "-m", "baselines", "train", "--model", "sampled",
                   "--device", "cpu", "--epochs", "2"],
}
#: kills per method (each followed by a restart); the engine starts fastest, so it gets the most
KILLS = {"slide": 8, "tf-full": 3, "tf-sampled": 2}
TRIALS: dict[str, dict[str, int]] = {}


def timing_columns(columns) -> list[str]:
    """Wall-clock columns: the only ones allowed to differ between identical runs."""
    return [c for c in columns if c in ("train_seconds", "eval_seconds") or c.startswith("t_")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    train, test = generate("tiny", 0)
    save_npz(train, folder / "train.npz")
    save_npz(test, folder / "test.npz")
    return folder / "train.npz", folder / "test.npz"


def command(method: str, tiny: tuple[Path, Path], out: Path) -> list[str]:
    return [*COMMANDS[method], "--train", str(tiny[0]), "--test", str(tiny[1]),
            "--out", str(out), *RUN_FLAGS]


def signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def wait_for_change(proc: subprocess.Popen, path: Path, before, timeout: float = 240.0) -> bool:
    """Poll until ``path`` is replaced (the run wrote its 'started' sidecar) or ``proc`` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if signature(path) != before:
            return True
        time.sleep(0.01)
    raise AssertionError(f"{path} not written within {timeout} s")


@dataclass
class Reference:
    curve: pd.DataFrame
    startup: float  # wall seconds from launch to the 'started' sidecar
    span: float  # wall seconds from 'started' to exit
    sidecar: dict = field(default_factory=dict)


_REFERENCES: dict[str, Reference] = {}


def reference(method: str, tiny, tmp_path_factory) -> Reference:
    """An uninterrupted run of the method's command (run once per module)."""
    if method not in _REFERENCES:
        out = tmp_path_factory.mktemp(f"ref-{method}") / "curve.csv"
        sidecar = out.with_suffix(".json")
        t0 = time.monotonic()
        proc = subprocess.Popen(command(method, tiny, out), cwd=REPO, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_change(proc, sidecar, None)
            t1 = time.monotonic()
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err[-3000:]
        _REFERENCES[method] = Reference(
            pd.read_csv(out), t1 - t0, time.monotonic() - t1, json.loads(sidecar.read_text())
        )
        assert _REFERENCES[method].sidecar["status"] == "done"
    return _REFERENCES[method]


def assert_prefix(ref: pd.DataFrame, got: pd.DataFrame, where: str) -> None:
    """``got`` equals the first ``len(got)`` rows of ``ref`` in every non-timing column."""
    assert list(got.columns) == list(ref.columns), where
    assert len(got) <= len(ref), f"{where}: {len(got)} rows, the reference has {len(ref)}"
    drop = timing_columns(ref.columns)
    pd.testing.assert_frame_equal(
        ref.iloc[: len(got)].drop(columns=drop).reset_index(drop=True),
        got.drop(columns=drop).reset_index(drop=True),
        check_exact=True,
        obj=where,
    )
    assert got["train_seconds"].is_monotonic_increasing, f"{where}: training seconds went back"


def checkpoint_position(ckpt: Path) -> tuple[int, float] | None:
    """(iteration, training seconds) of the checkpoint on disk; it must verify."""
    if not ckpt.exists():
        return None
    _, meta = load_checkpoint(ckpt)  # raises CheckpointError on a torn or corrupt file
    return int(meta["loop"]["iteration"]), float(meta["loop"]["train_seconds"])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["slide"])
def test_uninterrupted_runs_are_deterministic(method, tiny, tmp_path, tmp_path_factory):
    """The oracle of the kill tests: at one thread two runs give the same curve bit for bit.

    (The TF baselines are deterministic on CPU at one thread too: a kill before their first
    checkpoint restarts them from scratch, and the kill test then compares the whole curve.)
    """
    ref = reference(method, tiny, tmp_path_factory)
    out = tmp_path / "curve.csv"
    proc = subprocess.run(command(method, tiny, out), cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = pd.read_csv(out)
    assert len(again) == len(ref.curve)
    assert_prefix(ref.curve, again, f"{method}: second uninterrupted run")


def run_and_kill(argv, rng, ref, sidecar, before) -> tuple[bool, str]:
    """Start the command and SIGKILL it at a random moment (a fifth of the time anywhere in its
    start-up, otherwise in training); returns whether it finished first, and when it was hit."""
    proc = subprocess.Popen(argv, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        if rng.random() < 0.2:
            # anywhere in start-up (imports, data loading, JIT, resume)
            delay = rng.uniform(0.0, ref.startup)
            time.sleep(delay)
            where = f"startup+{delay:.2f}s"
        else:
            started = wait_for_change(proc, sidecar, before)
            delay = rng.uniform(0.02, 0.3) * ref.span
            time.sleep(delay)
            where = f"training+{delay:.2f}s" if started else "after exit"
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return finished, where


@pytest.mark.slow
@pytest.mark.parametrize("method", list(COMMANDS))
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_curve(
    method, tiny, tmp_path, tmp_path_factory, capsys
):
    ref = reference(method, tiny, tmp_path_factory)
    rng = random.Random(f"kill-{method}")
    out = tmp_path / "curve.csv"
    sidecar, ckpt = out.with_suffix(".json"), out.with_suffix(".ckpt.npz")
    argv = command(method, tiny, out)
    kills = identical = resumed_runs = 0
    log: list[str] = []
    failures: list[str] = []
    position = None  # checkpoint (iteration, seconds) left by the previous kill
    for attempt in range(KILLS[method]):
        before = signature(sidecar)
        finished, where = run_and_kill(argv, rng, ref, sidecar, before)
        if finished:
            log.append(f"{attempt}: finished before the kill ({where})")
            break
        kills += 1
        # what a kill may leave: a verified checkpoint (or none) and a prefix of the curve
        new_position = checkpoint_position(ckpt)
        trial_ok = True
        if out.exists():
            try:
                assert_prefix(ref.curve, pd.read_csv(out), f"{method} after kill {attempt}")
            except AssertionError as err:
                trial_ok = False
                failures.append(f"kill {attempt}: {err}")
        side = json.loads(sidecar.read_text()) if sidecar.exists() else None
        if position is not None and side is not None and signature(sidecar) != before:
            # this run got as far as writing its sidecar: it must have resumed, not restarted
            assert side["resumed"], f"{method}: kill {attempt}: checkpoint {position} not used"
            assert side["train_seconds"] >= position[1]
            resumed_runs += 1
        if position is not None and new_position is not None:
            assert new_position[0] >= position[0], "the checkpoint went backwards"
        if attempt > 0 and trial_ok:
            identical += 1  # the previous restart continued the reference curve exactly
        log.append(f"{attempt}: killed at {where}, checkpoint {new_position}")
        position = new_position

    # the same command once more, to the end
    proc = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = pd.read_csv(out)
    side = json.loads(sidecar.read_text())
    assert side["status"] == "done"
    try:
        assert len(final) == len(ref.curve), f"{len(final)} rows, reference {len(ref.curve)}"
        assert_prefix(ref.curve, final, f"{method}: final curve after {kills} kills")
        final_ok = True
    except AssertionError as err:
        final_ok = False
        failures.append(f"final: {err}")
    subset = final[final["eval_set"] == "subset"]
    assert subset["iteration"].is_unique and subset["iteration"].is_monotonic_increasing
    if position is not None:
        assert side["train_seconds"] >= position[1]
        assert final["train_seconds"].iloc[-1] >= position[1]
    assert not ckpt.exists(), "a finished run removes its checkpoint"
    if kills and final_ok:
        identical += 1  # the last restart completed the reference curve exactly
    TRIALS[method] = {"kills": kills, "identical": identical, "resumed": resumed_runs}
    with capsys.disabled():
        print(f"\n[reliability] {method}: {kills} SIGKILL+resume trials, {identical} resumed "
              f"with curves identical to the uninterrupted run ({'; '.join(log)})")
    assert identical == kills, "\n".join(failures)


@pytest.mark.slow
def test_kill_trial_summary(capsys):
    """One line with the totals of the kill-and-resume trials of this module."""
    if not TRIALS:
        pytest.skip("the kill tests did not run")
    kills = sum(t["kills"] for t in TRIALS.values())
    same = sum(t["identical"] for t in TRIALS.values())
    per = ", ".join(f"{m} {t['identical']}/{t['kills']}" for m, t in TRIALS.items())
    with capsys.disabled():
        print(f"\n[reliability] kill-and-resume summary: {same}/{kills} trials resumed with "
              f"identical curves ({per})")
    assert kills >= 6 and same == kills


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip"])
def test_corrupt_checkpoint_is_reported_and_the_run_restarts_from_scratch(
    damage, tiny, tmp_path, tmp_path_factory
):
    ref = reference("slide", tiny, tmp_path_factory)
    out = tmp_path / "curve.csv"
    ckpt = out.with_suffix(".ckpt.npz")
    argv = command("slide", tiny, out)
    # a run cut short leaves a checkpoint: stop it with a kill once a checkpoint exists
    proc = subprocess.Popen(argv, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert ckpt.exists()
    blob = bytearray(ckpt.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0xFF
    else:
        blob = blob[: len(blob) // 2]
    ckpt.write_bytes(bytes(blob))
    proc = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln and "checkpoint" in ln]
    assert warnings, proc.stderr[-3000:]
    assert "starting from scratch" in warnings[0] and str(ckpt.name) in warnings[0]
    assert "Traceback" not in proc.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["status"] == "done" and side["resumed"] is False
    final = pd.read_csv(out)
    assert len(final) == len(ref.curve)
    assert_prefix(ref.curve, final, f"slide after a {damage}ped checkpoint")
    assert final["train_seconds"].iloc[0] == 0.0


def test_checkpoint_arrays_round_trip_the_model_state(tiny, tmp_path):
    """A checkpoint stores every state array bit for bit (no float32->64 or dtype drift)."""
    from slide_bench.checkpoint import save_checkpoint
    from slide_bench.data import load_npz
    from slide_engine.engine import SlideConfig, SlideNetwork

    train = load_npz(tiny[0])
    net = SlideNetwork(SlideConfig(), seed=3)
    net.prepare(train)
    order = np.random.default_rng(0).permutation(train.n_points)
    for i in range(3):
        net.train_batch(order[i * 64 : (i + 1) * 64])
    state = net.state_dict()
    save_checkpoint(tmp_path / "c.npz", state, {"x": 1})
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape, key
        np.testing.assert_array_equal(loaded[key], value)


@pytest.mark.parametrize("damage", ["curve-deleted", "curve-cut-short", "curve-from-elsewhere"])
def test_checkpoint_without_its_curve_rows_restarts_instead_of_leaving_a_gap(damage, tmp_path):
    """A checkpoint is taken right after its evaluation row is written; if the curve on disk no
    longer reaches that row (deleted, replaced, cut), resuming would leave a silent gap at the
    start of the curve: the run must start again from scratch, with a warning."""
    from _reference_model import SoftmaxRegression, make_dataset

    from slide_bench.harness import RunSettings, run

    train, test = make_dataset(600, 60, 10, seed=1), make_dataset(200, 60, 10, seed=2)
    settings = RunSettings(batch_size=32, epochs=2, eval_every=5, eval_points=100, seed=3,
                           checkpoint_every_s=0.0, dataset="toy")
    ref = tmp_path / "ref.csv"
    run(SoftmaxRegression(), train, test, settings, ref, {"lr": 0.5})
    out = tmp_path / "curve.csv"
    with pytest.raises(RuntimeError):
        run(SoftmaxRegression(crash_at=23), train, test, settings, out, {"lr": 0.5})
    assert out.with_suffix(".ckpt.npz").exists()
    if damage == "curve-deleted":
        out.unlink()
    elif damage == "curve-cut-short":
        lines = out.read_text().splitlines(keepends=True)
        out.write_text("".join(lines[:2]))  # header + the iteration-0 row
    else:
        ref_lines = ref.read_text().splitlines(keepends=True)
        out.write_text("".join(ref_lines[:1]))  # a header only
    res = run(SoftmaxRegression(), train, test, settings, out, {"lr": 0.5})
    assert res.status == "done"
    assert json.loads(out.with_suffix(".json").read_text())["resumed"] is False
    a, b = pd.read_csv(ref), pd.read_csv(out)
    pd.testing.assert_frame_equal(a.drop(columns=["train_seconds", "eval_seconds"]),
                                  b.drop(columns=["train_seconds", "eval_seconds"]))


def test_rerun_of_a_finished_run_removes_a_stale_checkpoint(tmp_path):
    """A kill between the final sidecar and the checkpoint's removal leaves both; the rerun
    answers 'already finished' and removes the stale checkpoint (no 6 MB leftovers per run)."""
    from _reference_model import SoftmaxRegression, make_dataset

    from slide_bench.checkpoint import save_checkpoint
    from slide_bench.harness import RunSettings, run

    train, test = make_dataset(300, 60, 10, seed=1), make_dataset(100, 60, 10, seed=2)
    settings = RunSettings(batch_size=32, epochs=1, eval_every=5, eval_points=50, seed=3,
                           checkpoint_every_s=0.0, dataset="toy")
    out = tmp_path / "curve.csv"
    run(SoftmaxRegression(), train, test, settings, out, {"lr": 0.5})
    before = out.read_bytes(), out.with_suffix(".json").read_bytes()
    save_checkpoint(out.with_suffix(".ckpt.npz"), {"w": np.zeros(2)}, {"stale": True})
    model = SoftmaxRegression()
    res = run(model, train, test, settings, out, {"lr": 0.5})
    assert res.status == "done" and model.prepared == 0
    assert not out.with_suffix(".ckpt.npz").exists()
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == before
