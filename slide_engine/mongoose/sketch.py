"""Numba kernels of the MONGOOSE drift sketch: 1-bit SimHash codes of [w | b], packed per neuron.

Each neuron ``i`` of a sampled layer is summarised by ``B <= 64`` sign bits
``bit_j = (P[j, :d] . w_i + P[j, d] * b_i > 0)`` packed into one ``uint64`` (bit ``j`` of the word).
The scheduler compares these codes with the codes the neuron had when it was last hashed into
the tables; a flipped bit means the neuron crossed one of the ``B`` random hyperplanes.

Kernels are pure functions over arrays. The bodies are written once and compiled twice: serial
(deterministic, used on small inputs) and ``parallel=True`` (rows split over threads; every
thread writes its own rows, so there is no race).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MAX_SKETCH_BITS = 64
"""The sketch of one neuron is a single ``uint64`` word."""

_PARALLEL_MIN_ROWS = 4096
"""Below this many rows the parallel kernel's thread start-up costs more than it saves."""


@njit(cache=True, fastmath=True)
def popcount64(x: np.uint64) -> int:
    """Number of set bits of a 64-bit word (SWAR bit count)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


def _sketch_rows_body(
    weights: np.ndarray, bias: np.ndarray, proj: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    n_bits, d1 = proj.shape
    d = d1 - 1
    out = np.zeros(rows.shape[0], dtype=np.uint64)
    for t in prange(rows.shape[0]):
        r = rows[t]
        code = np.uint64(0)
        for j in range(n_bits):
            acc = np.float32(proj[j, d]) * np.float32(bias[r])
            for c in range(d):
                acc += proj[j, c] * weights[r, c]
            if acc > 0:
                code |= np.uint64(1) << np.uint64(j)
        out[t] = code
    return out


# fastmath lets the dot products vectorise (6.7x at 670K x 128, 16 bits); only signs of sums
# within float32 rounding of zero can differ from a sequential sum, which no caller relies on.
_sketch_rows_serial = njit(cache=True, fastmath=True)(_sketch_rows_body)
_sketch_rows_parallel = njit(cache=True, fastmath=True, parallel=True)(_sketch_rows_body)


def sketch_rows(
    weights: np.ndarray, bias: np.ndarray, proj: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Sketch the given neurons.

    Parameters
    ----------
    weights : ndarray of float32, shape (n, d)
        Layer weights, one row per neuron (C-contiguous).
    bias : ndarray of float32, shape (n,)
        Layer bias.
    proj : ndarray of float32, shape (B, d + 1)
        Sketch hyperplanes over ``[w | b]``; ``B <= 64``.
    rows : ndarray of int64, shape (m,)
        Neurons to sketch.

    Returns
    -------
    ndarray of uint64, shape (m,)
        Packed sign bits, bit ``j`` from hyperplane ``j``.
    """
    if rows.shape[0] >= _PARALLEL_MIN_ROWS:
        return _sketch_rows_parallel(weights, bias, proj, rows)
    return _sketch_rows_serial(weights, bias, proj, rows)


@njit(cache=True)
def refresh_codes(ref: np.ndarray, cur: np.ndarray, rows: np.ndarray, new: np.ndarray) -> int:
    """Store new current codes for ``rows`` and return the change of the total flipped-bit count.

    The scheduler keeps ``total = sum_i popcount(ref[i] ^ cur[i])`` over all neurons; replacing
    ``cur`` on ``m`` rows changes it by the returned amount, so the total stays exact at O(m) cost.

    Parameters
    ----------
    ref : ndarray of uint64, shape (n,)
        Codes of each neuron when it was last hashed into the tables (read only).
    cur : ndarray of uint64, shape (n,)
        Latest codes; updated in place on ``rows``.
    rows : ndarray of int64, shape (m,)
        Distinct neuron ids.
    new : ndarray of uint64, shape (m,)
        Their fresh codes.

    Returns
    -------
    int
        ``sum_r popcount(ref[r] ^ new) - popcount(ref[r] ^ cur_old[r])``.
    """
    delta = 0
    for t in range(rows.shape[0]):
        r = rows[t]
        delta -= popcount64(ref[r] ^ cur[r])
        cur[r] = new[t]
        delta += popcount64(ref[r] ^ new[t])
    return delta


@njit(cache=True)
def mark_rows(flags: np.ndarray, members: np.ndarray, count: int, rows: np.ndarray) -> int:
    """Add ``rows`` to a dirty set stored as a flag array plus a member list; O(len(rows)).

    Parameters
    ----------
    flags : ndarray of uint8, shape (n,)
        1 for members; updated in place.
    members : ndarray of int64, shape (n,)
        The first ``count`` entries are the members, in insertion order; updated in place.
    count : int
        Current number of members.
    rows : ndarray of int64, shape (m,)
        Neuron ids to add; duplicates and existing members are ignored.

    Returns
    -------
    int
        The new number of members.
    """
    for t in range(rows.shape[0]):
        r = rows[t]
        if flags[r] == 0:
            flags[r] = 1
            members[count] = r
            count += 1
    return count


@njit(cache=True)
def mark_active(
    flags: np.ndarray, members: np.ndarray, count: int, ids: np.ndarray, cnt: np.ndarray
) -> int:
    """:func:`mark_rows` over a batch's active sets, without flattening them first.

    Parameters
    ----------
    flags, members, count
        As in :func:`mark_rows`.
    ids : ndarray of int32, shape (B, cap)
        Active neuron ids per sample; row ``i`` holds ``cnt[i]`` valid entries.
    cnt : ndarray of int32, shape (B,)
        Active-set sizes.

    Returns
    -------
    int
        The new number of members.
    """
    for i in range(cnt.shape[0]):
        for q in range(cnt[i]):
            r = ids[i, q]
            if flags[r] == 0:
                flags[r] = 1
                members[count] = r
                count += 1
    return count
