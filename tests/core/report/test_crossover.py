"""The crossover table, its bands over seeds and its crossing points, against hand-computed
values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from slide_bench.report.crossover import (
    CROSSOVER_COLUMNS,
    crossover_bands,
    crossover_points,
    crossover_table,
)


def _curve(dataset, method, seed, times, p1):
    return pd.DataFrame({"dataset": dataset, "method": method, "device": "cpu", "threads": 2,
                         "seed": seed, "eval_set": "subset", "train_seconds": times,
                         "p_at_1": p1})


def _run(dataset, method, seed, iterations, seconds, best):
    return dict(dataset=dataset, method=method, device="cpu", threads=2, seed=seed,
                status="timeout", adam="lazy", iterations=iterations, train_seconds=seconds,
                best_p_at_1=best, final_p_at_1=best)


@pytest.fixture()
def sweep():
    """Two label counts, SLIDE and one peer, two seeds.

    A (100 labels): best P@1 0.8 -> level 0.4. SLIDE reaches it at 2 s (seed 0) and 1 s (seed 1),
    the peer at 4 s and 1.5 s: ratios 2 and 1.5. Steps: SLIDE 3 s / 100 = 0.03 and 2 / 50 =
    0.04, the peer 4 / 40 = 0.1 and 3 / 30 = 0.1: step ratios 3.333 and 2.5.
    B (1,000 labels): best 0.2 -> level 0.1; SLIDE reaches it at 5 s in both seeds, the peer
    never (best 0.05): ratio inf.
    """
    curves = pd.concat([
        _curve("A", "slide", 0, [0, 1, 2, 3], [0, 0.3, 0.5, 0.8]),
        _curve("A", "slide", 1, [0, 1, 2], [0, 0.45, 0.7]),
        _curve("A", "peer", 0, [0, 2, 4], [0, 0.2, 0.6]),
        _curve("A", "peer", 1, [0, 1.5, 3], [0, 0.41, 0.5]),
        _curve("B", "slide", 0, [0, 5], [0, 0.2]),
        _curve("B", "slide", 1, [0, 5], [0, 0.15]),
        _curve("B", "peer", 0, [0, 5], [0, 0.05]),
        _curve("B", "peer", 1, [0, 5], [0, 0.04]),
    ], ignore_index=True)
    summary = pd.DataFrame([
        _run("A", "slide", 0, 100, 3.0, 0.8), _run("A", "slide", 1, 50, 2.0, 0.7),
        _run("A", "peer", 0, 40, 4.0, 0.6), _run("A", "peer", 1, 30, 3.0, 0.5),
        _run("B", "slide", 0, 10, 5.0, 0.2), _run("B", "slide", 1, 10, 5.0, 0.15),
        _run("B", "peer", 0, 20, 5.0, 0.05), _run("B", "peer", 1, 20, 5.0, 0.04),
    ])
    table = crossover_table(curves, summary, {"B": 1_000, "A": 100},
                            {"method": "slide", "headline": 0.5}, {"A": 3.0, "B": 5.0},
                            {"git_sha": "abc", "cpu_model": "cpu", "cpu_count": 2})
    return table


def test_crossover_table_rows_against_hand_computed_times_and_ratios(sweep):
    assert list(sweep.columns) == list(CROSSOVER_COLUMNS)
    assert list(sweep["dataset"]) == ["A"] * 4 + ["B"] * 4  # label-count order
    peer_a = sweep[(sweep["dataset"] == "A") & (sweep["method"] == "peer")].set_index("seed")
    np.testing.assert_allclose(peer_a["level_p1"], [0.4, 0.4])
    np.testing.assert_allclose(peer_a["time_to_target_s"], [4.0, 1.5])
    np.testing.assert_allclose(peer_a["reference_time_s"], [2.0, 1.0])
    np.testing.assert_allclose(peer_a["tta_ratio"], [2.0, 1.5])
    np.testing.assert_allclose(peer_a["step_seconds"], [0.1, 0.1])
    np.testing.assert_allclose(peer_a["step_time_ratio"], [0.1 / 0.03, 0.1 / 0.04])
    peer_b = sweep[(sweep["dataset"] == "B") & (sweep["method"] == "peer")]
    assert peer_b["time_to_target_s"].isna().all()
    assert (peer_b["tta_ratio"] == math.inf).all()
    slide = sweep[sweep["method"] == "slide"]
    assert slide["tta_ratio"].isna().all() and slide["step_time_ratio"].isna().all()
    assert (sweep["git_sha"] == "abc").all()
    np.testing.assert_allclose(sweep["time_budget_s"], [3.0] * 4 + [5.0] * 4)


def test_bands_are_median_and_min_max_over_seeds_and_the_crossover_is_read_off_them(sweep):
    bands = crossover_bands(sweep).set_index(["quantity", "method", "n_labels"])
    np.testing.assert_allclose(bands.loc[("tta_ratio", "peer", 100), ["median", "low", "high"]],
                               [1.75, 1.5, 2.0])
    assert bands.loc[("tta_ratio", "peer", 1000), "median"] == math.inf
    assert bands.loc[("tta_ratio", "peer", 1000), "n_finite"] == 0
    np.testing.assert_allclose(
        bands.loc[("step_seconds", "slide", 100), ["median", "low", "high"]], [0.035, 0.03, 0.04])
    assert ("tta_ratio", "slide", 100) not in bands.index
    points = crossover_points(crossover_bands(sweep)).set_index("peer")
    assert points.loc["peer", "overtakes_above"] == 100
    assert "ahead at every label count from 100" in points.loc["peer", "reading"]


def test_crossover_points_interpolate_where_the_median_ratio_crosses_one_for_good():
    def peer(name, medians):
        return [dict(quantity="tta_ratio", n_labels=n, method=name, median=m, low=m, high=m,
                     n_seeds=2, n_finite=2)
                for n, m in zip([10, 100, 1000], medians, strict=True)]

    bands = pd.DataFrame(peer("a", [0.5, 2.0, 4.0]) + peer("b", [2.0, 0.8, 3.0])
                         + peer("c", [0.5, 0.9, math.inf]) + peer("d", [2.0, 3.0, 0.5]))
    points = crossover_points(bands).set_index("peer")
    # a: ln ratio -0.693 -> +0.693 between 10 and 100: halfway in log L, sqrt(10 * 100) = 31.62
    assert (points.loc["a", "overtakes_above"], points.loc["a", "overtakes_below"]) == (10, 100)
    assert points.loc["a", "estimate"] == pytest.approx(31.62, rel=1e-3)
    # b: behind at 100 (0.8), ahead at 1000 (3): ln 0.8 = -0.2231, ln 3 = 1.0986, the line
    # crosses 0 at 0.2231 / 1.3218 = 0.1688 of the way: 10 ** 2.1688 = 147.5
    assert points.loc["b", "overtakes_above"] == 100
    assert points.loc["b", "estimate"] == pytest.approx(147.5, rel=1e-3)
    # c: ahead only where the peer never got there: bracketed, no estimate
    assert points.loc["c", "overtakes_below"] == 1000 and math.isnan(points.loc["c", "estimate"])
    # d: behind at the largest label count
    assert math.isnan(points.loc["d", "overtakes_above"])
    assert "not ahead at the largest label count" in points.loc["d", "reading"]
