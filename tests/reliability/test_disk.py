"""Fault injection: a full disk or a read-only output folder gives a clear error and loses nothing.

A run of the engine is interrupted (SIGKILL once it has a checkpoint), leaving a checkpoint, a
partial curve and a sidecar. The same command is then run

* on a full file system (a small tmpfs filled to the last byte; without ``mount`` rights, a
  file-size limit: ``RLIMIT_FSIZE`` with SIGXFSZ ignored, so writes fail with EFBIG),
* on the same file system remounted read-only (without ``mount`` rights and as a normal user,
  a folder without write permission),

and must exit 2 with one ``error:`` line naming the problem, no traceback, every earlier file
byte for byte unchanged and no temporary file left. Once space is back, the same command resumes
and finishes with the curve of an uninterrupted run. The data CLI is held to the same rule.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from slide_bench.data import generate, save_npz

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RUN = ["--threads", "1", "--seed", "1", "--epochs", "2", "--eval-every", "4",
       "--set", "run.checkpoint_every_s=0", "--set", "run.batch_size=64",
       "--set", "run.eval_points=200"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    train, test = generate("tiny", 0)
    save_npz(train, folder / "train.npz")
    save_npz(test, folder / "test.npz")
    return folder / "train.npz", folder / "test.npz"


def engine(tiny, out: Path) -> list[str]:
    return [sys.executable, "-m", "slide_engine", "train", "--train", str(tiny[0]),
            "--test", str(tiny[1]), "--out", str(out), *RUN]


@pytest.fixture
def small_fs(tmp_path):
    """A 16 MiB tmpfs at ``tmp_path/fs``; None when this process may not mount."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        proc = None
    if proc is None or proc.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def fill(folder: Path) -> Path:
    """Write a filler file until the file system is full; returns it."""
    filler = folder / "filler"
    block = b"\0" * (1 << 16)
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(block)
                fh.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC
    # smaller writes until not one more byte fits
    for size in (4096, 1):
        try:
            with open(filler, "ab") as fh:
                while True:
                    fh.write(b"\0" * size)
                    fh.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


def interrupted_run(tiny, out: Path) -> None:
    """Start the engine and SIGKILL it once its checkpoint exists."""
    ckpt = out.with_suffix(".ckpt.npz")
    proc = subprocess.Popen(engine(tiny, out), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert ckpt.exists() and out.exists()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "filler"}


def one_error_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def set_fsize_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death by signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_full_disk_and_read_only_output_fail_clearly_and_keep_the_earlier_files(
    tiny, tmp_path, small_fs
):
    reference = tmp_path / "ref" / "curve.csv"
    proc = subprocess.run(engine(tiny, reference), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    folder = (small_fs or tmp_path) / "run"
    folder.mkdir()
    out = folder / "curve.csv"
    interrupted_run(tiny, out)
    before = snapshot(folder)
    assert {"curve.csv", "curve.json", "curve.ckpt.npz"} <= set(before)

    # 1. the disk is full
    if small_fs is not None:
        filler = fill(small_fs)
        full = subprocess.run(engine(tiny, out), cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        one_error_line(full, "No space left on device", str(folder))
        assert snapshot(folder) == before
        filler.unlink()
    # the same with a file-size limit (works without mount rights)
    limited = subprocess.run(engine(tiny, out), cwd=REPO, capture_output=True, text=True,
                             timeout=300, preexec_fn=set_fsize_limit(1000))
    one_error_line(limited, "File too large", str(folder))
    assert snapshot(folder) == before

    # 2. the output folder is read-only
    if small_fs is not None:
        remount = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)],
                                 capture_output=True, timeout=30)
        assert remount.returncode == 0, remount.stderr
        try:
            ro = subprocess.run(engine(tiny, out), cwd=REPO, capture_output=True, text=True,
                                timeout=300)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], timeout=30)
        one_error_line(ro, "cannot write to output folder", "Read-only file system")
        assert snapshot(folder) == before
    elif os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            ro = subprocess.run(engine(tiny, out), cwd=REPO, capture_output=True, text=True,
                                timeout=300)
        finally:
            folder.chmod(0o755)
        one_error_line(ro, "cannot write to output folder", "Permission denied")
        assert snapshot(folder) == before

    # 3. with space back, the same command resumes and ends with the uninterrupted curve
    done = subprocess.run(engine(tiny, out), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ref, got = pd.read_csv(reference), pd.read_csv(out)
    timing = [c for c in ref.columns
              if c in ("train_seconds", "eval_seconds") or c.startswith("t_")]
    pd.testing.assert_frame_equal(ref.drop(columns=timing), got.drop(columns=timing))
    assert sorted(p.name for p in folder.iterdir()) == ["curve.csv", "curve.json"]
    if small_fs is None:
        pytest.skip("tmpfs not mountable here: full disk and read-only checked by RLIMIT_FSIZE "
                    "(and permissions when not root) only")


def test_data_cli_on_a_full_disk_keeps_the_earlier_dataset(tmp_path, small_fs):
    base = small_fs or tmp_path
    out = base / "tiny"
    argv = [sys.executable, "-m", "slide_bench.data", "generate", "--preset", "tiny",
            "--out", str(out)]
    first = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    before = snapshot(out)
    if small_fs is not None:
        filler = fill(small_fs)
        proc = subprocess.run([*argv, "--seed", "1"], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        filler.unlink()
        one_error_line(proc, "No space left on device")
        assert snapshot(out) == before
    proc = subprocess.run([*argv, "--seed", "1"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, preexec_fn=set_fsize_limit(50_000))
    one_error_line(proc, "File too large")
    assert snapshot(out) == before
    shutil.rmtree(out)
