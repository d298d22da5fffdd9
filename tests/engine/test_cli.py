"""``python -m slide_engine train``: curve and sidecar written, overrides applied, clean errors."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys

import pytest

from slide_bench.data import generate, save_npz
from slide_bench.errors import ConfigError
from slide_engine.__main__ import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    train, test = generate("tiny", 0)
    save_npz(train, folder / "train.npz")
    save_npz(test, folder / "test.npz")
    return folder / "train.npz", folder / "test.npz"


def test_train_writes_curve_and_sidecar(tiny_files, tmp_path):
    train, test = tiny_files
    out = tmp_path / "curve.csv"
    status = main(["train", "--train", str(train), "--test", str(test), "--out", str(out),
                   "--eval-every", "3", "--seed", "2", "--set", "run.max_iterations=6",
                   "--set", "run.batch_size=64", "--set", "output.hash.min_active=80",
                   "--set", "adam=dense"])
    assert status == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["iteration"] for r in rows] == ["0", "3", "6", "6"]
    assert rows[-1]["eval_set"] == "full"
    assert float(rows[1]["active_mean"]) >= 80.0
    for row in rows:  # what the tables hold, in every evaluation row (the subset)
        for column in ("table_coverage", "recall_top1", "recall_top10", "share_tables",
                       "share_labels", "share_topup"):
            assert 0.0 <= float(row[column]) <= 1.0, (column, row[column])
        shares = sum(float(row[f"share_{p}"]) for p in ("tables", "labels", "topup"))
        assert shares == pytest.approx(1.0)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["status"] == "done"
    assert sidecar["config"]["adam"] == "dense"
    assert sidecar["config"]["output"]["hash"]["min_active"] == 80


def test_mismatched_train_and_test_are_rejected(tiny_files, tmp_path):
    train, _ = tiny_files
    other = tmp_path / "other.npz"
    test = generate("tiny", 1)[1]
    save_npz(dataclasses.replace(test, n_features=test.n_features + 1), other)
    with pytest.raises(ConfigError, match="same dataset"):
        main(["train", "--train", str(train), "--test", str(other), "--out",
              str(tmp_path / "c.csv")])


def test_unknown_config_key_exits_2_with_one_line(tiny_files, tmp_path):
    train, test = tiny_files
    proc = subprocess.run(
        [sys.executable, "-m", "slide_engine", "train", "--train", str(train), "--test",
         str(test), "--out", str(tmp_path / "c.csv"), "--set", "output.hash.kk=3"],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: config.output.hash: unknown key 'kk'")
    assert "Traceback" not in proc.stderr
