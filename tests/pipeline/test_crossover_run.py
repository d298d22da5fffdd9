"""The crossover sweep's rules end to end on the tiny CI sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _pipeline import REPO, run_snakemake

from slide_bench.report.crossover import CROSSOVER_COLUMNS


@pytest.mark.slow
def test_the_tiny_sweep_writes_the_crossover_table_and_figure(tmp_path):
    # the sweep's rules end to end on config/ci/crossover.yaml: datasets generated per label
    # count, per-point budgets, aggregation, then only the crossover outputs (~1 min; the
    # table is written with 6 significant digits)
    run_snakemake(tmp_path, REPO / "config/ci/crossover.yaml", "--cores", "2",
                  "results/crossover.csv", "results/plots/crossover.png")
    table = pd.read_csv(tmp_path / "results/crossover.csv")
    assert list(table.columns) == list(CROSSOVER_COLUMNS)
    assert sorted(zip(table["n_labels"], table["method"], strict=True)) == [
        (200, "slide"), (200, "slide-lu-collapsed"), (200, "tf-full"),
        (1800, "slide"), (1800, "slide-lu-collapsed"), (1800, "tf-full")]
    assert (table["time_budget_s"] == 1.0).all() and (table["step_seconds"] > 0).all()
    peer = table[table["method"] == "tf-full"]
    finite = np.isfinite(peer["time_to_target_s"]) & (peer["reference_time_s"] > 0)
    np.testing.assert_allclose(peer.loc[finite, "tta_ratio"],
                               peer.loc[finite, "time_to_target_s"]
                               / peer.loc[finite, "reference_time_s"], rtol=1e-4)
    np.testing.assert_allclose(peer["step_time_ratio"],
                               peer["step_seconds"] / peer["reference_step_s"], rtol=1e-4)
    assert (tmp_path / "results/plots/crossover.png").stat().st_size > 10_000
    assert "slide vs tf-full" in (tmp_path / "results/logs/crossover.log").read_text()
