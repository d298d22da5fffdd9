"""``python -m baselines train`` end to end, in subprocesses: curve schema, exit codes 2 and 3."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from slide_bench.data import generate, save_npz
from slide_bench.runlog import CURVE_COLUMNS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    train, test = generate("tiny", 0)
    save_npz(train, folder / "train.npz")
    save_npz(test, folder / "test.npz")
    return folder / "train.npz", folder / "test.npz"


def baselines(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "baselines", "train", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is visible")
def test_gpu_without_gpu_exits_3_with_a_clear_message(tiny_files, tmp_path):
    train, test = tiny_files
    out = tmp_path / "gpu.csv"
    proc = baselines(
        "--model",
        "full",
        "--device",
        "gpu",
        "--train",
        str(train),
        "--test",
        str(test),
        "--out",
        str(out),
    )
    assert proc.returncode == 3, proc.stderr
    assert "error: --device gpu requested but TensorFlow sees no GPU" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # never a CPU run under a GPU label


def test_bad_option_exits_2(tiny_files, tmp_path):
    train, test = tiny_files
    proc = baselines(
        "--train",
        str(train),
        "--test",
        str(test),
        "--out",
        str(tmp_path / "x.csv"),
        "--set",
        "adam=sparse",
    )
    assert proc.returncode == 2
    assert "config.adam" in proc.stderr and "Traceback" not in proc.stderr


def test_cpu_run_writes_curve_and_provenance(tiny_files, tmp_path):
    train, test = tiny_files
    out = tmp_path / "sampled.csv"
    proc = baselines(
        "--model",
        "sampled",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--seed",
        "2",
        "--epochs",
        "1",
        "--eval-every",
        "5",
        "--train",
        str(train),
        "--test",
        str(test),
        "--out",
        str(out),
        "--set",
        "run.max_iterations=10",
        "--set",
        "adam=lazy",
    )
    assert proc.returncode == 0, proc.stderr
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0])[: len(CURVE_COLUMNS)] == CURVE_COLUMNS
    assert {"t_host", "t_step"} <= set(rows[0])
    assert [r["iteration"] for r in rows] == ["0", "5", "10", "10"]
    assert rows[-1]["eval_set"] == "full" and rows[-1]["method"] == "tf-sampled"
    assert all(r["device"] == "cpu" and r["threads"] == "1" for r in rows)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["status"] == "done"
    prov = sidecar["provenance"]
    assert prov["tf_device"] == "/CPU:0" and prov["tf_intra_op_threads"] == "1"
    # the build actually installed (tensorflow runs on the CPU, CUDA build or not)
    assert prov["tf_build_is_cuda_build"] == str(tf.sysconfig.get_build_info()["is_cuda_build"])
    assert prov["tf_distributions"].startswith("tensorflow")
    assert sidecar["config"]["adam"] == "lazy" and sidecar["config"]["model"] == "sampled"
