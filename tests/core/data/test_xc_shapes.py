"""Synthetic shapes by label count, interpolated between real XC sets, against hand-computed
values."""

from __future__ import annotations

import pytest

from slide_bench.data.synthetic import resolve_spec
from slide_bench.data.xc_shapes import XC_SHAPES, shape_at, sweep_datasets
from slide_bench.errors import ConfigError

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
