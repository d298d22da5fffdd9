"""``workflow/scripts/time_to_p1.py``: first crossing of absolute P@1 levels, medians and ranges
over seeds, against curves whose answers are known by construction."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "workflow" / "scripts" / "time_to_p1.py"


def load_script():
    spec = importlib.util.spec_from_file_location("time_to_p1", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_curve(path: Path, p_at_1: list[float], final: float) -> None:
    n = len(p_at_1)
    rows = [{"eval_set": "subset", "iteration": 100 * i, "train_seconds": 10.0 * i,
             "p_at_1": p} for i, p in enumerate(p_at_1)]
    rows.append({"eval_set": "full", "iteration": 100 * (n - 1),
                 "train_seconds": 10.0 * (n - 1), "p_at_1": final})
    pd.DataFrame(rows).to_csv(path, index=False)


def test_first_crossing_median_and_range(tmp_path):
    mod = load_script()
    write_curve(tmp_path / "a-cpu-t2-s0.csv", [0.0, 0.03, 0.041, 0.052, 0.045], 0.044)
    write_curve(tmp_path / "a-cpu-t2-s1.csv", [0.0, 0.02, 0.03, 0.04, 0.049], 0.047)
    write_curve(tmp_path / "b-cpu-t2-s0.csv", [0.0, 0.045, 0.03], 0.02)
    write_curve(tmp_path / "b-cpu-t2-s1.csv", [0.0, 0.01, 0.03], 0.025)
    out = mod.table(sorted(tmp_path.glob("*.csv")), [0.04, 0.05]).set_index("method")
    assert out.loc["a", "s to 0.04"] == "25.0 [20.0, 30.0]"  # seconds 20 and 30
    assert out.loc["a", "s to 0.05"] == "30.0 (1/2)"  # only seed 0 reached 0.05
    assert out.loc["a", "best P@1"] == "0.0505 [0.0490, 0.0520]"
    assert out.loc["a", "final P@1"] == "0.0455 [0.0440, 0.0470]"
    assert out.loc["b", "s to 0.04"] == "10.0 (1/2)"
    assert out.loc["b", "s to 0.05"] == "never (0/2)"
    mod.figure(sorted(tmp_path.glob("*.csv")), [0.04], tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="not a pipeline curve name"):
        mod.run_rows(tmp_path / "oops.csv", [0.04])
