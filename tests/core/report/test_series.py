"""The plotted series (slide_bench.report.series) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from slide_bench.report.series import (
    band_over_runs,
    headline_runs,
    method_styles,
    scaling_table,
    series_label,
    speedup,
    time_to_target,
    time_to_target_over_seeds,
)


def test_band_of_runs_on_a_shared_grid_is_the_pointwise_median_and_quartiles():
    runs = [
        (np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.2, 0.4])),
        (np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.4, 0.6])),
    ]
    band = band_over_runs(runs)
    np.testing.assert_allclose(band.x, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(band.median, [0.0, 0.3, 0.5])
    # numpy's linear quantile of two values: a + q (b - a)
    np.testing.assert_allclose(band.low, [0.0, 0.25, 0.45])
    np.testing.assert_allclose(band.high, [0.0, 0.35, 0.55])
    assert band.n_runs == 2


def test_band_interpolates_runs_evaluated_at_different_times_within_their_common_range():
    a = (np.array([0.0, 2.0, 4.0]), np.array([0.0, 0.2, 0.4]))
    b = (np.array([5.0, 1.0, 3.0]), np.array([0.8, 0.0, 0.4]))  # unsorted on purpose
    band = band_over_runs([a, b])
    # common range [max(0, 1), min(4, 5)] = [1, 4]; grid = union of x inside it
    np.testing.assert_allclose(band.x, [1.0, 2.0, 3.0, 4.0])
    # a at 1..4: .1 .2 .3 .4 ; b at 1..4: 0 .2 .4 .6
    np.testing.assert_allclose(band.median, [0.05, 0.2, 0.35, 0.5])


def test_band_of_three_runs_has_the_middle_run_as_median_and_of_one_run_no_width():
    x = np.array([0.0, 1.0])
    band = band_over_runs([(x, np.array([0.1, 0.3])), (x, np.array([0.2, 0.9])),
                           (x, np.array([0.0, 0.5]))], quantiles=(0.0, 1.0))
    np.testing.assert_allclose(band.median, [0.1, 0.5])
    np.testing.assert_allclose(band.low, [0.0, 0.3])
    np.testing.assert_allclose(band.high, [0.2, 0.9])
    single = band_over_runs([(x, np.array([0.1, 0.3]))])
    np.testing.assert_allclose(single.low, single.median)
    np.testing.assert_allclose(single.high, single.median)


def test_band_rejects_no_runs_and_empty_runs():
    with pytest.raises(ValueError):
        band_over_runs([])
    with pytest.raises(ValueError):
        band_over_runs([(np.array([]), np.array([]))])


def test_time_to_target_is_the_first_measured_time_at_or_above_target():
    x = np.array([30.0, 0.0, 10.0, 20.0])
    y = np.array([0.9, 0.1, 0.5, 0.4])
    assert time_to_target(x, y, 0.45) == 10.0
    assert time_to_target(x, y, 0.5) == 10.0  # reaching it exactly counts
    assert time_to_target(x, y, 0.6) == 30.0
    assert math.isnan(time_to_target(x, y, 0.95))
    assert math.isnan(time_to_target(x, y, float("nan")))


def test_headline_runs_keep_each_method_and_device_at_its_largest_thread_count():
    runs = pd.DataFrame(
        {
            "method": ["a", "a", "a", "b", "b", "a"],
            "device": ["cpu", "cpu", "cpu", "cpu", "cpu", "gpu"],
            "threads": [1, 4, 4, 2, 1, 1],
            "seed": [0, 0, 1, 0, 0, 0],
        }
    )
    kept = headline_runs(runs)
    got = zip(kept["method"], kept["device"], kept["threads"], kept["seed"], strict=True)
    assert sorted(got) == [
        ("a", "cpu", 4, 0), ("a", "cpu", 4, 1), ("a", "gpu", 1, 0), ("b", "cpu", 2, 0)
    ]


def test_scaling_table_medians_seeds_and_divides_by_the_smallest_thread_count():
    summary = pd.DataFrame(
        {
            "method": ["a"] * 5 + ["b"] * 2,
            "device": ["cpu"] * 7,
            "threads": [1, 1, 2, 2, 4, 2, 4],
            "seed": [0, 1, 0, 1, 0, 0, 0],
            "seconds_per_epoch": [10.0, 12.0, 6.0, 6.0, math.nan, 8.0, 5.0],
        }
    )
    table = scaling_table(summary)
    a = table[table["method"] == "a"]
    assert list(a["threads"]) == [1, 2]  # the NaN (failed) run is dropped
    np.testing.assert_allclose(a["seconds_per_epoch"], [11.0, 6.0])
    np.testing.assert_allclose(a["low"], [10.0, 6.0])
    np.testing.assert_allclose(a["high"], [12.0, 6.0])
    np.testing.assert_allclose(a["speedup"], [1.0, 11.0 / 6.0])
    np.testing.assert_allclose(a["ideal"], [1.0, 2.0])
    b = table[table["method"] == "b"]
    np.testing.assert_allclose(b["speedup"], [1.0, 8.0 / 5.0])
    np.testing.assert_allclose(b["ideal"], [1.0, 2.0])  # relative to b's own smallest (2)


def test_scaling_table_of_only_failed_runs_is_empty():
    summary = pd.DataFrame({"method": ["a"], "device": ["gpu"], "threads": [1], "seed": [0],
                            "seconds_per_epoch": [math.nan]})
    assert scaling_table(summary).empty


def test_method_styles_are_fixed_by_config_order_and_distinct():
    names = [f"m{i}" for i in range(25)]
    styles = method_styles(names)
    assert len({(s.color, s.marker) for s in styles.values()}) == 25
    assert method_styles(names[:3]) == {n: styles[n] for n in names[:3]}
    assert len({styles[n].color for n in names[:10]}) == 10


def test_series_label_names_the_device_only_when_devices_are_mixed():
    assert series_label("tf-full", "gpu", ["cpu", "gpu"]) == "tf-full (gpu)"
    assert series_label("tf-full", "cpu", ["cpu", "cpu"]) == "tf-full"


def test_time_to_target_over_seeds_is_the_median_only_when_every_seed_reached_it():
    assert time_to_target_over_seeds([10.0, 30.0, 20.0]) == 20.0
    assert time_to_target_over_seeds([10.0, 30.0]) == 20.0
    assert math.isnan(time_to_target_over_seeds([10.0, math.nan, 12.0]))  # one seed missed it
    assert math.isnan(time_to_target_over_seeds([]))


def test_speedup_is_baseline_time_over_method_time_and_nan_without_both():
    assert speedup(400.0, 25.0) == 16.0
    assert speedup(80.0, 25.0) == pytest.approx(3.2)
    assert speedup(20.0, 40.0) == 0.5  # slower than the baseline: below 1
    assert math.isnan(speedup(math.nan, 25.0))  # the baseline never reached the target
    assert math.isnan(speedup(400.0, math.nan))  # the method never reached it
    assert math.isnan(speedup(400.0, 0.0))  # met before training: no ratio


def ratio_summary():
    """Two seeds per method at 2 threads (plus 1-thread runs the ratios must ignore)."""
    rows = [
        # method, threads, seed, status, time to target, best P@1
        ("slide", 2, 0, "timeout", 20.0, 0.30),
        ("slide", 2, 1, "timeout", 30.0, 0.31),
        ("slide", 1, 0, "timeout", 1.0, 0.30),
        ("tf-full", 2, 0, "timeout", 380.0, 0.20),
        ("tf-full", 2, 1, "timeout", 420.0, 0.21),
        ("tf-full", 1, 0, "timeout", 9999.0, 0.20),
        ("tf-sampled-10pct", 2, 0, "timeout", 90.0, 0.22),
        ("tf-sampled-10pct", 2, 1, "timeout", 110.0, 0.22),
        ("slide-dwta", 2, 0, "timeout", 50.0, 0.25),
        ("slide-dwta", 2, 1, "timeout", math.nan, 0.18),
        ("tf-gpu", 2, 0, "failed", math.nan, math.nan),
    ]
    frame = pd.DataFrame(rows, columns=["method", "threads", "seed", "status",
                                        "time_to_target_s", "best_p_at_1"])
    frame["device"] = "cpu"
    return frame


def test_convergence_time_figure_draws_the_level_and_writes_the_verdicts_under_the_axes():
    from slide_bench.report.figures import convergence_figure

    summary = ratio_summary()
    summary = summary[summary["method"].isin(["slide", "tf-full"])].assign(
        dataset="x", reason="", target_p_at_1=0.19, adam="lazy")
    curves = pd.DataFrame(
        [dict(method=m, device="cpu", threads=2, seed=s, eval_set="subset", iteration=i,
              train_seconds=i * (1.0 if m == "slide" else 10.0), p_at_1=0.0005 * i)
         for m in ("slide", "tf-full") for s in (0, 1) for i in range(0, 401, 50)])
    styles = method_styles(["slide", "tf-full"])
    verdicts = ["tf-full: slide reached P@1 0.19 16x sooner than tf-full"]
    fig = convergence_figure(curves, summary, styles, "x", "train_seconds", verdicts)
    main, box = fig.axes
    assert "16x sooner than tf-full" in box.texts[0].get_text()
    assert any(line.get_ydata()[0] == 0.19 for line in main.lines)  # the level line
    assert "headline level = 0.190" in [t.get_text() for t in main.get_legend().get_texts()]
    # the median time to the level of each method whose seeds all got there: slide 25 s
    assert [ln.get_xdata()[0] for ln in main.lines if ln.get_linestyle() == ":"] == [25.0, 400.0]
    assert "lazy Adam, every method" in main.get_title()
    # against iterations: the level line, no box
    fig = convergence_figure(curves, summary, styles, "x", "iteration")
    assert len(fig.axes) == 1


def test_optimizer_note_names_one_mode_or_each_mode_with_its_methods():
    from slide_bench.report.figures import optimizer_note

    same = pd.DataFrame({"method": ["slide", "tf-full"], "adam": ["lazy", "lazy"]})
    assert optimizer_note(same) == "lazy Adam, every method"
    mixed = pd.DataFrame({"method": ["slide", "tf-full", "tf-x"],
                          "adam": ["lazy", "dense", "dense"]})
    assert optimizer_note(mixed) == "dense Adam: tf-full, tf-x; lazy Adam: slide"


def test_time_to_accuracy_figure_draws_one_line_per_method_against_the_level():
    from slide_bench.report.figures import time_to_accuracy_figure

    levels = pd.DataFrame([
        dict(dataset="x", method=m, device="cpu", threads=2, adam="lazy", level=lv,
             level_p1=lv * 0.5, n_runs=2, n_reached=2 if t == t else 1, time_median_s=t,
             time_min_s=t, time_max_s=t, best_p1=0.5, train_seconds=20.0)
        for m, times in (("slide", (2.0, 5.0)), ("tf-full", (8.0, math.nan)))
        for lv, t in zip((0.5, 0.9), times, strict=True)])
    summary = pd.DataFrame({"method": ["slide", "tf-full"], "device": "cpu", "adam": "lazy",
                            "status": "timeout", "reason": ""})
    fig = time_to_accuracy_figure(levels, summary, method_styles(["slide", "tf-full"]), "x")
    ax = fig.axes[0]
    drawn = {tuple(ln.get_xdata()): tuple(ln.get_ydata()) for ln in ax.lines
             if len(ln.get_xdata())}
    assert drawn[(0.25, 0.45)] == (2.0, 5.0)  # slide reached both levels
    assert drawn[(0.25,)] == (8.0,)  # tf-full only the first
    assert drawn[(0.45,)] == pytest.approx((21.0,))  # ... and is marked missing at the top
    assert "1/2" in [t.get_text() for t in ax.texts]


def test_sampling_figure_draws_each_slide_run_and_skips_the_dense_baselines():
    from slide_bench.report.figures import SAMPLING_PANELS, sampling_figure

    rows = []
    for method, threads, seed in (("slide", 2, 0), ("slide", 2, 1), ("slide", 1, 0),
                                  ("tf-full", 2, 0)):
        for i in range(0, 401, 100):
            row = dict(method=method, device="cpu", threads=threads, seed=seed,
                       eval_set="subset", iteration=i, p_at_1=0.1)
            if method == "slide" and i > 0:  # the engine's columns; TF rows have none
                row.update(query_cos=1.0 - i / 1000 - seed / 100, active_mean=6000.0 - i,
                           distinct_rows=1e4 * (1 + i / 100), recall_top10=0.1 + i / 1000,
                           recall_top1=0.2 + i / 1000, active_fraction=0.01 + seed / 100,
                           share_tables=0.5, share_topup=0.45 - seed / 10,
                           share_labels=0.05 + seed / 10, table_coverage=0.9 + i / 10000)
            rows.append(row)
    curves = pd.DataFrame(rows)
    styles = method_styles(["slide", "tf-full"])
    fig = sampling_figure(curves, styles, "x")
    axes = fig.axes
    assert len(axes) == len(SAMPLING_PANELS)
    for ax, (columns, _) in zip(axes, SAMPLING_PANELS, strict=True):
        # the headline thread count (2) only, one line per seed and column, iteration 0 left out
        drawn = [c for c in columns for _ in (0, 1)]
        if columns[0] == "recall_top10":
            drawn = [c for c in (*columns, "active_fraction") for _ in (0, 1)]
        assert len(ax.lines) == len(drawn)
        for column in set(drawn):
            for seed in (0, 1):
                run = curves[(curves["method"] == "slide") & (curves["threads"] == 2)
                             & (curves["seed"] == seed) & (curves["iteration"] > 0)]
                assert any(list(line.get_xdata()) == list(run["iteration"])
                           and list(line.get_ydata()) == list(run[column])
                           for line in ax.lines), (column, seed)
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend == ["slide, 2 thr, seed 0", "slide, 2 thr, seed 1"]
    # the uniform-sampling expectation is dotted in the recall panel
    recall = axes[[c[0] for c, _ in SAMPLING_PANELS].index("recall_top10")]
    assert sum(line.get_linestyle() == ":" for line in recall.lines) == 2
    # no SLIDE run (or no such column at all): each panel says so
    fig = sampling_figure(curves[curves["method"] == "tf-full"].drop(
        columns=["query_cos", "active_mean", "distinct_rows"]), styles, "x")
    assert all(ax.texts[0].get_text() == "no sampled run" and not ax.lines for ax in fig.axes)
