"""P@k and nDCG@k against a brute-force reference written from the definitions."""

import math

import numpy as np
import pytest

from slide_bench.metrics import ndcg_at_k, precision_at_k, topk_from_scores


def _random_labels(rng, n, n_labels, max_per_point=4):
    rows = [
        np.sort(rng.choice(n_labels, size=rng.integers(0, max_per_point + 1), replace=False))
        for _ in range(n)
    ]
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    indices = np.concatenate(rows).astype(np.int32) if indptr[-1] else np.zeros(0, np.int32)
    return rows, indptr, indices


def _brute_precision(topk, rows, k):
    return np.mean([len(set(topk[i, :k]) & set(rows[i])) / k for i in range(len(rows))])


def _brute_ndcg(topk, rows, k):
    scores = []
    for i, labels in enumerate(rows):
        dcg = sum(1 / math.log2(r + 2) for r in range(k) if topk[i, r] in set(labels))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(labels))))
        scores.append(dcg / idcg if idcg else 0.0)
    return float(np.mean(scores))


def test_precision_and_ndcg_match_brute_force():
    rng = np.random.default_rng(0)
    n, n_labels = 300, 20
    rows, indptr, indices = _random_labels(rng, n, n_labels)
    scores = rng.standard_normal((n, n_labels))
    # make the first label of half the points the top score so hits actually happen
    for i in range(0, n, 2):
        if len(rows[i]):
            scores[i, rows[i][0]] = 10.0
    topk = topk_from_scores(scores, 5)
    p = precision_at_k(topk, indptr, indices)
    nd = ndcg_at_k(topk, indptr, indices)
    for k in (1, 3, 5):
        assert p[k] == pytest.approx(_brute_precision(topk, rows, k), abs=1e-12)
        assert nd[k] == pytest.approx(_brute_ndcg(topk, rows, k), abs=1e-12)
    assert p[1] > 0.4  # the planted top scores are found


def test_points_without_labels_are_misses():
    topk = np.array([[0, 1, 2], [0, 1, 2]], dtype=np.int32)
    indptr = np.array([0, 0, 1], dtype=np.int64)
    indices = np.array([0], dtype=np.int32)
    assert precision_at_k(topk, indptr, indices, ks=(1,))[1] == 0.5
    assert ndcg_at_k(topk, indptr, indices, ks=(1,))[1] == 0.5


def test_topk_orders_by_score_then_id():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, 0.2]])
    assert topk_from_scores(scores, 3).tolist() == [[1, 3, 2]]
    full = topk_from_scores(scores, 5)
    assert full.tolist() == [[1, 3, 2, 4, 0]]
    rng = np.random.default_rng(1)
    s = rng.standard_normal((50, 40))
    np.testing.assert_array_equal(topk_from_scores(s, 7), np.argsort(-s, axis=1)[:, :7])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        precision_at_k(np.zeros((2, 1), np.int32), np.array([0, 1]), np.array([0], np.int32))
    with pytest.raises(ValueError):
        precision_at_k(np.zeros((1, 1), np.int32), np.array([0, 1]), np.array([0], np.int32))
