"""The plotted series (slide_engine.report.series) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from slide_engine.report.series import (
    band_over_runs,
    headline_runs,
    method_styles,
    scaling_table,
    series_label,
    time_to_target,
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
