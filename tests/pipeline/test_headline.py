"""The pipeline on a user's own XC text files writes the headline for that dataset.

A config that names only local XC text files (`datasets: {name: {train: ..., test: ...}}`, the
small files of the CI config) and every peer of the shipped configs runs end to end; the
headline must have one row per peer with the documented columns, ratios that agree with the
curves, and the report's landing page must show the table. Spawns Snakemake and trains
(SLIDE and TensorFlow, 2 training seconds per run), so it is marked slow.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from slide_bench.report.headline import HEADLINE_COLUMNS
from slide_bench.report.series import time_to_target

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "config" / "ci" / "data"
PEERS = ("tf-full", "tf-sampled-1pct", "tf-sampled-5pct", "tf-sampled-10pct", "slide-uniform",
         "slide-lu-collapsed")

pytestmark = pytest.mark.slow


def user_config() -> dict:
    """The default experiment's methods and rules on the user's text files, made small."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["datasets"] = {"my-data": {"train": str(DATA / "tiny-train.txt"),
                                      "test": str(DATA / "tiny-test.txt")}}
    for spec in config["methods"].values():
        spec.pop("threads", None)
    config["methods"]["slide-uniform"]["set"]["output.hash.min_active"] = 100
    config["grid"] = {"devices": ["cpu"], "threads": [1], "seeds": [0]}
    config["budget"].update(time_budget=2, eval_every_s=0.2, eval_points=200, batch_size=32)
    config["optimizer"]["lr"] = 0.01
    return config


def run(work: Path, configfile: Path, *args: str) -> None:
    argv = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(work), "--configfile", str(configfile), *args]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]


def test_own_text_files_give_the_headline(tmp_path):
    config = user_config()
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run(tmp_path, configfile, "--cores", "2")
    run(tmp_path, configfile, "--report", str(tmp_path / "report.html"))

    head = pd.read_csv(tmp_path / "results" / "headline.csv")
    assert tuple(head.columns) == HEADLINE_COLUMNS
    assert sorted(head["peer"]) == sorted(PEERS)
    assert (head["dataset"] == "my-data").all()
    assert head["verdict"].str.len().gt(20).all()

    # every run used the shared optimiser rule, and its sidecar says so
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert (summary["adam"] == "lazy").all()
    assert summary["reason"].str.startswith("time budget").all()  # never the epoch cap

    # the ratios agree with the curves: the peer's time to the headline level over SLIDE's
    curves = pd.read_csv(tmp_path / "results" / "curves.csv")
    subset = curves[curves["eval_set"] == "subset"]
    level = config["target"]["headline"] * subset["p_at_1"].max()
    times = {m: time_to_target(g["train_seconds"], g["p_at_1"], level)
             for m, g in subset.groupby("method")}
    for row in head.itertuples():
        t_slide, t_peer = times["slide"], times[row.peer]
        if np.isfinite(t_slide) and np.isfinite(t_peer):
            assert row.tta_ratio_median == pytest.approx(t_peer / t_slide, rel=1e-3)
        elif np.isfinite(t_slide):
            assert row.tta_ratio_median == math.inf and "never" in row.verdict
        elif np.isfinite(t_peer):
            assert row.tta_ratio_median == 0.0 and "never" in row.verdict
        per_step = {m: r["train_seconds"] / r["iterations"]
                    for m, r in summary.set_index("method").iterrows()}
        assert row.step_time_ratio == pytest.approx(per_step[row.peer] / per_step["slide"],
                                                    rel=1e-3)
        best = summary.set_index("method")["best_p_at_1"]
        assert row.best_p1_diff == pytest.approx(best["slide"] - best[row.peer], abs=1e-4)

    # the report opens with the headline table
    html = (tmp_path / "report.html").read_text()
    start = html.index("var workflow_desc")
    landing = html[start : html.index("</script>", start)]
    table = landing[landing.index("<table") :]
    assert "step_time_ratio" in table and all(peer in table for peer in PEERS)
