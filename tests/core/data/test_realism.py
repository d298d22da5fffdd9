"""The synthetic twin against the real Bibtex, and the generator mechanisms behind it.

The slow test runs the documented comparison (``python -m slide_bench.data compare-real``:
10 epochs, lazy Adam lr 1e-3, two seeds, an active budget of 20 % of the labels) on the real
Bibtex (split 1) and its twin preset ``bibtex-like`` and checks what the calibration promises:
the twin's tables-over-uniform P@1 gap has the real gap's sign and at least half its size, TF
full softmax's P@1 is within 0.05 of the real one, and the label/feature statistics match within
the tolerances below.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from slide_bench.data import XCData, dataset_stats, generate
from slide_bench.data.stats import structure_stats
from slide_bench.data.synthetic import CALIBRATED, PRESETS, resolve_spec
from slide_bench.errors import ConfigError
from slide_bench.realism import CompareSettings, compare_real, format_comparison, summarise

# statistic -> (relative tolerance, absolute tolerance) of twin against real
STAT_TOLERANCES = {
    "stat_points": (0.0, 0.0),
    "stat_features": (0.0, 0.0),
    "stat_labels": (0.0, 0.0),
    "stat_labels_per_point": (0.05, 0.0),
    "stat_features_per_point": (0.05, 0.0),
    "stat_points_per_label_q50": (0.15, 0.0),
    "stat_points_per_label_q90": (0.15, 0.0),
    "stat_points_per_label_max": (0.25, 0.0),
    "stat_values_mean": (0.0, 1e-6),
    "stat_labels_per_point_cv": (0.1, 0.0),
    "stat_features_per_point_cv": (0.1, 0.0),
    "stat_feature_df_q50": (0.25, 0.0),
    "stat_feature_df_q90": (0.25, 0.0),
    "stat_feature_df_max": (0.05, 0.0),
    "stat_label_pairs_cooccurring": (0.2, 0.0),
    "stat_cooccurrence_top5_share": (0.2, 0.0),
    "stat_nearest_label_cosine": (0.0, 0.03),
}


def _data(labels: list[list[int]], features: list[dict[int, float]], d: int, l_: int) -> XCData:
    x_indptr = np.cumsum([0] + [len(f) for f in features]).astype(np.int64)
    y_indptr = np.cumsum([0] + [len(y) for y in labels]).astype(np.int64)
    x_indices = np.array([k for f in features for k in sorted(f)], dtype=np.int32)
    x_values = np.array([f[k] for f in features for k in sorted(f)], dtype=np.float32)
    y_indices = np.array([k for y in labels for k in sorted(y)], dtype=np.int32)
    return XCData(x_indptr, x_indices, x_values, y_indptr, y_indices, d, l_)


def test_structure_stats_against_hand_counts() -> None:
    # 4 labels; pairs (0,1) twice and (2,3) once share points; label 0 and 1 have parallel
    # centroids, label 2 and 3 orthogonal ones
    data = _data(
        labels=[[0, 1], [0, 1], [2, 3], [2]],
        features=[{0: 1.0}, {0: 2.0}, {1: 1.0, 2: 1.0}, {1: 1.0}],
        d=4,
        l_=4,
    )
    stats = structure_stats(data)
    assert stats["label_pairs_cooccurring"] == pytest.approx(2 / 6)
    assert stats["cooccurrence_top5_share"] == pytest.approx(1.0)  # every label has one partner
    assert stats["values_mean"] == pytest.approx(1.2)
    assert stats["feature_df_max"] == pytest.approx(0.5)  # features 0 and 1 in 2 of 4 points
    np.testing.assert_allclose(stats["feature_df_q50"], np.quantile([0.5, 0.5, 0.25, 0], 0.5))
    # centroids: 0 and 1 -> e0 (cosine 1); 2 -> (0, 2, 1, 0), 3 -> (0, 1, 1, 0)
    c2, c3 = np.array([2.0, 1.0]), np.array([1.0, 1.0])
    cos23 = c2 @ c3 / np.linalg.norm(c2) / np.linalg.norm(c3)
    assert stats["nearest_label_cosine"] == pytest.approx((1 + 1 + 2 * cos23) / 4)
    k = np.array([2, 2, 2, 1], dtype=float)
    assert stats["labels_per_point_cv"] == pytest.approx(k.std() / k.mean())
    capped = structure_stats(data, max_pairs=1)
    assert math.isnan(capped["label_pairs_cooccurring"]) and math.isnan(
        capped["nearest_label_cosine"]
    )


def _same_cluster_share(data: XCData, size: int) -> float:
    same = total = 0
    for i in range(data.n_points):
        y = data.y_indices[data.y_indptr[i] : data.y_indptr[i + 1]] // size
        if y.size >= 2:
            total += y.size * (y.size - 1)
            same += int((y[:, None] == y[None, :]).sum()) - y.size
    return same / total


def test_topic_labels_make_siblings_cooccur_and_values_can_be_binary() -> None:
    base = resolve_spec("tiny", {"n_train": "800", "n_test": "10", "labels_per_point": "3"})
    plain, _ = generate(base, 0)
    topical, _ = generate(resolve_spec(base, {"topic_labels": "1", "values": "binary"}), 0)
    size = base.cluster_size
    # independent draws: a pair shares a cluster about as often as 1 in 50 clusters would
    assert _same_cluster_share(plain, size) < 0.1
    assert _same_cluster_share(topical, size) > 0.8  # siblings (a full cluster falls through)
    assert np.all(topical.x_values == 1.0) and not np.all(plain.x_values == 1.0)
    assert dataset_stats(topical)["labels_per_point"] == pytest.approx(3.0, rel=0.1)
    with pytest.raises(ConfigError, match="values must be"):
        resolve_spec(base, {"values": "counts"})


@pytest.mark.parametrize(
    "name", ["bibtex-like", "default", "amazon670k-like", "delicious200k-like"]
)
def test_presets_inherit_the_calibrated_mechanisms(name: str) -> None:
    spec = PRESETS[name]
    for key, value in CALIBRATED.items():
        assert getattr(spec, key) == value, (name, key)
    assert spec.shared_words > 0.5  # siblings share most of their signature words


@pytest.mark.slow
def test_twin_matches_real_bibtex_on_what_decides_the_benchmark(bibtex_zip: Path) -> None:
    settings = CompareSettings()  # the documented table's settings
    rows = compare_real("bibtex", bibtex_zip.parent.parent, settings)
    print("\n" + format_comparison(rows))  # shown by pytest -s
    table = summarise(rows)
    real, twin = table["real"], table["twin"]
    gap_real, gap_twin = real["gap_tables_minus_uniform"], twin["gap_tables_minus_uniform"]
    assert gap_real > 0, "on real Bibtex the tables' negatives beat uniform ones"
    assert np.sign(gap_twin) == np.sign(gap_real) and abs(gap_twin) >= abs(gap_real) / 2
    assert abs(twin["tf_full_p_at_1"] - real["tf_full_p_at_1"]) <= 0.05
    # the tables find hard negatives far more often than chance on both
    for source in (real, twin):
        assert source["slide_tables_recall_top1"] > 2 * source["slide_uniform_recall_top1"]
    for metric, (rel, abs_) in STAT_TOLERANCES.items():
        assert twin[metric] == pytest.approx(real[metric], rel=rel, abs=abs_), metric
