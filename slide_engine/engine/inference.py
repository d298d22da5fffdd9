"""Top-k per row of scores: a parallel one-pass selection (ties: lower id first).

The dense forward over all labels is a BLAS matrix product per chunk of test points (see
:meth:`~slide_engine.engine.network.SlideNetwork.predict_topk`); this kernel then keeps the ``k``
best labels of each row in one pass over the row, without sorting it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _better(s_a, id_a, s_b, id_b):
    return s_a > s_b or (s_a == s_b and id_a < id_b)


@njit(cache=True)
def _topk_row(scores, cols, n, k, out):
    # out holds the best k column positions so far, best first (insertion: k is small); rows
    # with fewer than k candidates are padded with -1 (a miss for the metrics)
    filled = 0
    for j in range(n):
        s = scores[j]
        c = cols[j]
        if filled == k and not _better(s, c, scores[out[k - 1]], cols[out[k - 1]]):
            continue
        pos = filled if filled < k else k - 1
        while pos > 0 and _better(s, c, scores[out[pos - 1]], cols[out[pos - 1]]):
            out[pos] = out[pos - 1]
            pos -= 1
        out[pos] = j
        if filled < k:
            filled += 1
    for r in range(k):
        out[r] = cols[out[r]] if r < filled else -1


@njit(cache=True, parallel=True)
def topk_dense(scores: np.ndarray, k: int) -> np.ndarray:
    """Label ids of the ``k`` highest scores of each row, best first (ties: lower id first).

    Parameters
    ----------
    scores : float32 (n, L)
        Scores of every label.
    k : int
        Number kept, ``1 <= k <= L``.

    Returns
    -------
    int32 (n, k)
    """
    n, n_labels = scores.shape
    cols = np.arange(n_labels).astype(np.int32)
    out = np.empty((n, k), dtype=np.int32)
    for i in prange(n):
        _topk_row(scores[i], cols, n_labels, k, out[i])
    return out


@njit(cache=True, parallel=True)
def topk_sparse(scores: np.ndarray, ids: np.ndarray, cnt: np.ndarray, k: int) -> np.ndarray:
    """Top ``k`` among each row's scored candidates (hashing at inference).

    Parameters
    ----------
    scores : float32 (n, cap)
        Scores of the candidates ``ids`` int32 (n, cap); the first ``cnt[i]`` are valid.
    cnt : int32 (n,)
    k : int

    Returns
    -------
    int32 (n, k)
        Best first (ties: lower id first), padded with -1 when a row has fewer than k.
    """
    n = scores.shape[0]
    out = np.empty((n, k), dtype=np.int32)
    for i in prange(n):
        _topk_row(scores[i], ids[i], cnt[i], k, out[i])
    return out
