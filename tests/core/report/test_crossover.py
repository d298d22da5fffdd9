"""The crossover sweep: synthetic shapes by label count and the crossover table, against
hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _pipeline import REPO, run_snakemake

from slide_bench.data.synthetic import resolve_spec
from slide_bench.data.xc_shapes import XC_SHAPES, shape_at, sweep_datasets
from slide_bench.errors import ConfigError
from slide_bench.report.crossover import (
    CROSSOVER_COLUMNS,
    crossover_bands,
    crossover_points,
    crossover_table,
)

ANCHORS = ["EURLex-4K", "Bibtex"]  # any order


def test_a_real_sets_label_count_gives_its_shape_and_outside_the_range_the_nearest():
    for n_labels, name in ((3_993, "EURLex-4K"), (159, "Bibtex"), (100, "Bibtex"),
                           (10_000, "EURLex-4K")):
        shape, real = shape_at(n_labels, ANCHORS), XC_SHAPES[name]
        assert shape.n_features == real.n_features
        assert shape.labels_per_point == real.labels_per_point
        assert shape.points_per_label == real.points_per_label


def test_between_two_sets_the_shape_is_their_geometric_blend():
    # L = 797 is (nearly) the geometric mean of 159 and 3,993: every statistic is (nearly) the
    # geometric mean of the two sets' (hand-computed: sqrt(1836 * 5000) = 3029.9,
    # sqrt(2.40 * 5.31) = 3.570, sqrt(111.71 * 25.73) = 53.61)
    shape = shape_at(797, ANCHORS)
    assert shape.n_features == pytest.approx(3029.9, rel=2e-3)
    assert shape.labels_per_point == pytest.approx(3.570, rel=2e-3)
    assert shape.points_per_label == pytest.approx(53.61, rel=2e-3)
    # a full-size set: points per label x labels / labels per point
    assert shape.n_train == pytest.approx(53.61 * 797 / 3.570, rel=5e-3)


def test_sweep_datasets_give_the_generator_the_interpolated_sizes_and_a_budget_per_point():
    section = {"labels": [200, 3_993], "anchors": ANCHORS, "time_budget": [2, 6],
               "evaluations": 3, "n_train": 512, "n_test": None, "prefix": "xo",
               "generator": {"preset": "tiny", "seed": 4, "params": {"signal": 0.5}}}
    datasets = sweep_datasets(section)
    assert list(datasets) == ["xo-200", "xo-3993"]
    entry = datasets["xo-3993"]
    assert entry["synthetic"]["preset"] == "tiny" and entry["synthetic"]["seed"] == 4
    params = entry["synthetic"]["params"]
    assert params == {"signal": 0.5, "n_labels": 3_993, "n_features": 5_000,
                      "labels_per_point": 5.31, "n_train": 512,
                      "n_test": round(25.73 * 3_993 / 5.31) // 4}
    assert entry["budget"] == {"time_budget": 6.0, "eval_every_s": 2.0}
    spec = resolve_spec("tiny", {k: str(v) for k, v in params.items()})
    assert spec.n_labels == 3_993 and spec.n_features == 5_000

    with pytest.raises(ConfigError, match="one training-seconds budget per label count"):
        sweep_datasets({**section, "time_budget": [2]})
    with pytest.raises(ConfigError, match="strictly ascending"):
        sweep_datasets({**section, "labels": [3_993, 200]})
    with pytest.raises(ConfigError, match="unknown XC dataset 'Nope'"):
        sweep_datasets({**section, "anchors": ["Nope"]})


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
        (200, "slide"), (200, "tf-full"), (1800, "slide"), (1800, "tf-full")]
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
