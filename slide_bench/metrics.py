"""Ranking metrics for extreme classification: P@k and nDCG@k over label CSR.

Every method in the suite (the SLIDE engine and the TensorFlow baselines) is scored by these
functions, so their numbers are comparable by construction. A point without labels counts as a
miss at every rank (its precision is 0), which is the Extreme Classification Repository convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

__all__ = ["ndcg_at_k", "precision_at_k", "topk_from_scores"]


def topk_from_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Return the ids of the ``k`` highest scores of each row, best first.

    Parameters
    ----------
    scores : ndarray, shape (n, L)
        Scores of every label for ``n`` points.
    k : int
        Number of ids to keep; ``k <= L``.

    Returns
    -------
    ndarray, shape (n, k), int32
        Label ids ordered by decreasing score; equal scores are ordered by increasing id among
        the candidates kept by the partial sort.
    """
    n, n_labels = scores.shape
    if not 0 < k <= n_labels:
        raise ValueError(f"k must be in [1, {n_labels}], got {k}")
    if k < n_labels:
        cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        cand = np.broadcast_to(np.arange(n_labels), (n, n_labels))
    cand = np.sort(cand, axis=1)  # id order first, so the stable sort below breaks ties by id
    cand_scores = np.take_along_axis(scores, cand, axis=1)
    order = np.argsort(-cand_scores, axis=1, kind="stable")
    return np.take_along_axis(cand, order, axis=1).astype(np.int32)


@numba.njit(cache=True)
def _hits(topk: np.ndarray, y_indptr: np.ndarray, y_indices: np.ndarray) -> np.ndarray:
    # hits[i, r] = 1 if the rank-r prediction of point i is one of its labels (labels are few per
    # point, so a linear scan beats any set structure here)
    n, k = topk.shape
    hits = np.zeros((n, k), dtype=np.uint8)
    for i in range(n):
        lo, hi = y_indptr[i], y_indptr[i + 1]
        for r in range(k):
            pred = topk[i, r]
            for j in range(lo, hi):
                if y_indices[j] == pred:
                    hits[i, r] = 1
                    break
    return hits


def _check(topk: np.ndarray, y_indptr: np.ndarray, ks: Sequence[int]) -> None:
    if topk.ndim != 2 or topk.shape[0] != len(y_indptr) - 1:
        raise ValueError(
            f"topk has shape {topk.shape} but the labels describe {len(y_indptr) - 1} points"
        )
    if max(ks) > topk.shape[1]:
        raise ValueError(f"k={max(ks)} needs at least {max(ks)} predictions per point")


def precision_at_k(
    topk: np.ndarray,
    y_indptr: np.ndarray,
    y_indices: np.ndarray,
    ks: Sequence[int] = (1, 3, 5),
) -> dict[int, float]:
    """Mean precision at each ``k`` in ``ks``.

    Parameters
    ----------
    topk : ndarray, shape (n, K), int
        Predicted label ids, best first, with ``K >= max(ks)``.
    y_indptr : ndarray, shape (n + 1,), int64
        Label CSR row pointers.
    y_indices : ndarray, shape (nnz,), int32
        Label ids.
    ks : sequence of int
        Cut-offs.

    Returns
    -------
    dict
        ``{k: mean over points of |top-k ∩ labels| / k}``; 0.0 for an empty set of points.
    """
    _check(topk, y_indptr, ks)
    if topk.shape[0] == 0:
        return {k: 0.0 for k in ks}
    hits = _hits(np.ascontiguousarray(topk), y_indptr, y_indices)
    cum = np.cumsum(hits, axis=1, dtype=np.int64)
    return {k: float(cum[:, k - 1].mean() / k) for k in ks}


def ndcg_at_k(
    topk: np.ndarray,
    y_indptr: np.ndarray,
    y_indices: np.ndarray,
    ks: Sequence[int] = (1, 3, 5),
) -> dict[int, float]:
    """Mean normalised discounted cumulative gain at each ``k`` (binary relevance).

    Parameters
    ----------
    topk : ndarray, shape (n, K), int
        Predicted label ids, best first, with ``K >= max(ks)``.
    y_indptr : ndarray, shape (n + 1,), int64
        Label CSR row pointers.
    y_indices : ndarray, shape (nnz,), int32
        Label ids.
    ks : sequence of int
        Cut-offs.

    Returns
    -------
    dict
        ``{k: mean over points of DCG@k / IDCG@k}``, with ``IDCG@k`` over ``min(k, |labels|)``
        ideal hits; a point without labels scores 0.
    """
    _check(topk, y_indptr, ks)
    if topk.shape[0] == 0:
        return {k: 0.0 for k in ks}
    hits = _hits(np.ascontiguousarray(topk), y_indptr, y_indices)
    discount = 1.0 / np.log2(np.arange(2, topk.shape[1] + 2))
    dcg = np.cumsum(hits * discount, axis=1)
    n_labels = np.diff(y_indptr)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    out = {}
    for k in ks:
        idcg = ideal[np.minimum(n_labels, k)]
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(idcg > 0, dcg[:, k - 1] / np.where(idcg > 0, idcg, 1.0), 0.0)
        out[k] = float(score.mean())
    return out
