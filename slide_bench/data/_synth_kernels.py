"""Numba kernels of the synthetic generator: a counter-based RNG and the per-point sampler.

Every point draws from its own splitmix64 stream seeded by (seed, global point index), so the
output does not depend on the thread count or on how points are split into blocks: the
parallel kernel is deterministic.
"""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@numba.njit(cache=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _uniform(state: np.ndarray) -> float:
    """Advance the one-element uint64 ``state`` and return a float64 in [0, 1)."""
    state[0] += _GOLDEN
    return float(_mix(state[0]) >> np.uint64(11)) * _TO_UNIT


@numba.njit(cache=True)
def _sample_point(
    state: np.ndarray,
    y_out: np.ndarray,
    x_out: np.ndarray,
    tf_out: np.ndarray,
    label_cdf: np.ndarray,
    label_of_rank: np.ndarray,
    signatures: np.ndarray,
    slot_cdf: np.ndarray,
    background_cdf: np.ndarray,
    feature_of_rank: np.ndarray,
    signal: float,
    cluster_cdf: np.ndarray,
    cluster_size: int,
    topic_labels: float,
    mark: np.ndarray,
    slot: np.ndarray,
    stamp: int,
) -> int:
    """Fill one point's labels and features; return the number of distinct features drawn."""
    k = y_out.shape[0]
    n_labels = label_cdf.shape[0]
    for j in range(k):
        tries = 0
        # labels after the first come from the first label's cluster with probability
        # topic_labels (no draw at all when it is 0, so such specs keep their streams)
        topical = j > 0 and topic_labels > 0.0 and _uniform(state) < topic_labels
        while True:  # distinct labels; k <= L / 2 is guaranteed by the caller
            tries += 1
            u = _uniform(state)
            if topical and tries <= 20:  # siblings by popularity; a full cluster falls through
                lo = (y_out[0] // cluster_size) * cluster_size
                hi = min(lo + cluster_size, n_labels)
                lab = lo + np.searchsorted(cluster_cdf[lo:hi], u, side="right")
                lab = min(lab, hi - 1)
            elif tries <= 1000:
                lab = label_of_rank[np.searchsorted(label_cdf, u, side="right")]
            else:  # a head too heavy to give k distinct labels soon: finish uniformly
                lab = label_of_rank[int(u * n_labels)]
            fresh = True
            for m in range(j):
                if y_out[m] == lab:
                    fresh = False
                    break
            if fresh:
                y_out[j] = lab
                break
    y_out.sort()
    f = x_out.shape[0]
    got = 0
    budget = 50 * f + 100  # stop on pathological specs (e.g. f close to D)
    while got < f and budget > 0:
        budget -= 1
        if k > 0 and _uniform(state) < signal:
            lab = y_out[int(_uniform(state) * k)]
            pos = np.searchsorted(slot_cdf, _uniform(state), side="right")
            fid = signatures[lab, pos]
        else:
            fid = feature_of_rank[np.searchsorted(background_cdf, _uniform(state), side="right")]
        if mark[fid] == stamp:
            tf_out[slot[fid]] += 1.0
        else:
            mark[fid] = stamp
            slot[fid] = got
            x_out[got] = fid
            tf_out[got] = 1.0
            got += 1
    order = np.argsort(x_out[:got])
    x_out[:got] = x_out[:got][order]
    tf_out[:got] = tf_out[:got][order]
    return got


@numba.njit(cache=True, parallel=True)
def sample_points(
    seed: np.uint64,
    first: int,
    y_indptr: np.ndarray,
    x_indptr: np.ndarray,
    y_indices: np.ndarray,
    x_indices: np.ndarray,
    x_tf: np.ndarray,
    x_count: np.ndarray,
    label_cdf: np.ndarray,
    label_of_rank: np.ndarray,
    signatures: np.ndarray,
    slot_cdf: np.ndarray,
    background_cdf: np.ndarray,
    feature_of_rank: np.ndarray,
    signal: float,
    cluster_cdf: np.ndarray,
    cluster_size: int,
    topic_labels: float,
    n_features: int,
) -> None:
    """Sample labels and term counts of points ``first .. first + n - 1``.

    Parameters
    ----------
    seed : uint64
        Stream seed; point g uses the stream seeded by ``mix(seed + g * golden)``.
    first : int
        Global index of the first point (the test split continues after the train split).
    y_indptr, x_indptr : ndarray of int64, shape (n + 1,)
        Target label / distinct-feature counts as row pointers.
    y_indices : ndarray of int32, shape (y_indptr[-1],)
        Out: sorted label ids per point.
    x_indices : ndarray of int32, shape (x_indptr[-1],)
        Out: sorted feature ids per point (only the first ``x_count[i]`` of each row are set).
    x_tf : ndarray of float32, shape (x_indptr[-1],)
        Out: term counts aligned with ``x_indices``.
    x_count : ndarray of int64, shape (n,)
        Out: distinct features actually drawn per point (== target unless the budget ran out).
    label_cdf : ndarray of float64, shape (L,)
        Cumulative label popularity by rank (last entry 1.0).
    label_of_rank, feature_of_rank : ndarray of int32, shape (L,) / (D,)
        Id of the label / feature of each popularity rank.
    signatures : ndarray of int32, shape (L, s)
        Signature feature ids of each label.
    slot_cdf : ndarray of float64, shape (s,)
        Cumulative weight of the signature slots (shared by all labels).
    background_cdf : ndarray of float64, shape (D,)
        Cumulative background (Zipf) feature popularity by rank.
    signal : float
        Probability that a token comes from one of the point's label signatures.
    cluster_cdf : ndarray of float64, shape (L,)
        Cumulative popularity of the labels within their cluster (labels ``c * cluster_size``
        to ``(c + 1) * cluster_size - 1`` form cluster c; each cluster's run ends at 1.0).
    cluster_size : int
        Labels per cluster.
    topic_labels : float
        Probability that a label after a point's first is drawn from the first one's cluster.
    n_features : int
        D (size of the per-block scratch arrays).
    """
    n = y_indptr.shape[0] - 1
    n_blocks = min(n, 64)
    for b in numba.prange(n_blocks):
        mark = np.full(n_features, -1, dtype=np.int64)
        slot = np.zeros(n_features, dtype=np.int64)
        state = np.zeros(1, dtype=np.uint64)
        for i in range(b * n // n_blocks, (b + 1) * n // n_blocks):
            state[0] = _mix(seed + np.uint64(first + i) * _GOLDEN)
            x_count[i] = _sample_point(
                state,
                y_indices[y_indptr[i] : y_indptr[i + 1]],
                x_indices[x_indptr[i] : x_indptr[i + 1]],
                x_tf[x_indptr[i] : x_indptr[i + 1]],
                label_cdf,
                label_of_rank,
                signatures,
                slot_cdf,
                background_cdf,
                feature_of_rank,
                signal,
                cluster_cdf,
                cluster_size,
                topic_labels,
                mark,
                slot,
                i,
            )


@numba.njit(cache=True)
def tfidf_rows(
    indptr: np.ndarray, indices: np.ndarray, tf: np.ndarray, idf: np.ndarray, scale: float
) -> np.ndarray:
    """Row-L2-normalised ``(1 + log tf) * idf`` values rounded to multiples of ``1 / scale``.

    Parameters
    ----------
    indptr : ndarray of int64, shape (n + 1,)
    indices : ndarray of int32, shape (nnz,)
    tf : ndarray of float32, shape (nnz,)
        Term counts (>= 1).
    idf : ndarray of float64, shape (D,)
    scale : float
        An integer power of ten; values become ``max(round(v * scale), 1) / scale`` (the
        division is exact-rounded, so the float32 value prints and re-reads exactly).

    Returns
    -------
    ndarray of float32, shape (nnz,)
    """
    out = np.empty(tf.shape[0], dtype=np.float32)
    for i in range(indptr.shape[0] - 1):
        start, stop = indptr[i], indptr[i + 1]
        norm = 0.0
        for j in range(start, stop):
            v = (1.0 + np.log(tf[j])) * idf[indices[j]]
            norm += v * v
        norm = np.sqrt(norm)
        for j in range(start, stop):
            v = (1.0 + np.log(tf[j])) * idf[indices[j]] / norm
            out[j] = max(np.round(v * scale), 1.0) / scale
    return out
