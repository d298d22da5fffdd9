"""Probes of the machine the benchmark runs on: what its memory does at 1 and N threads.

SLIDE's batch is bound by memory (random weight rows and their Adam moments), so its speed and
its thread scaling are judged against two measured ceilings:

- :func:`measure_bandwidth`: a streaming NumPy copy (the best case for the memory system);
- :func:`measure_row_update`: a lazy-Adam step over randomly chosen rows of three
  ``(n_rows, width)`` float32 arrays (weights and two moments, read and written: the access
  pattern of the output layer's fused pass without its arithmetic on the batch). Its rate at 1
  and at N threads bounds what any memory-bound kernel gains from the extra threads here.
"""

from __future__ import annotations

import math
import time

import numba
import numpy as np
from numba import njit, prange

__all__ = ["measure_bandwidth", "measure_row_update"]

#: blocks of the row-update probe (fixed: the same work split at any thread count)
_BLOCKS = 16


def measure_bandwidth(mib: int = 512, repeats: int = 5) -> float:
    """Memory bandwidth of a NumPy copy, GB/s (read + write bytes over the best time).

    Parameters
    ----------
    mib : int
        Size of the copied array in MiB (well beyond the caches).
    repeats : int
        Copies timed; the best is kept (the least disturbed by other processes).
    """
    src = np.ones(mib * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


@njit(cache=True, parallel=True, fastmath=True, error_model="numpy")
def _row_update(w: np.ndarray, m: np.ndarray, v: np.ndarray, rows: np.ndarray) -> None:
    # Adam's element loop on each listed row (the "gradient" is a fraction of the weight)
    b1, b2 = np.float32(0.9), np.float32(0.999)
    c1, c2 = np.float32(0.1), np.float32(0.001)
    lr, eps, gs = np.float32(1e-3), np.float32(1e-8), np.float32(1e-3)
    for blk in prange(_BLOCKS):
        for r in range(blk, rows.shape[0], _BLOCKS):
            j = rows[r]
            wr, mr, vr = w[j], m[j], v[j]
            for q in range(wr.shape[0]):
                g = gs * wr[q]
                mk = b1 * mr[q] + c1 * g
                vk = b2 * vr[q] + c2 * g * g
                mr[q] = mk
                vr[q] = vk
                wr[q] -= lr * mk / (np.sqrt(vk) + eps)


def measure_row_update(threads: list[int], n_rows: int = 2**18, width: int = 128,
                       touched: int = 2**16, repeats: int = 15,
                       seed: int = 0) -> dict[int, float]:
    """Rate of a lazy-Adam step over random rows, GB/s, at each thread count.

    Parameters
    ----------
    threads : list of int
        Thread counts to measure (each at most ``numba.config.NUMBA_NUM_THREADS``).
    n_rows, width : int
        Shape of each of the three float32 arrays (the default: 128 MiB each, beyond the caches).
    touched : int
        Distinct random rows stepped per timed call (a fresh draw per call, so no row is warm
        in the caches from the call before).
    repeats : int
        Timed calls per thread count, the thread counts taking turns; the median is kept (the
        memory of a shared host swings by up to 1.5x between seconds: see docs/performance.md).
    seed : int
        Seed of the row draws.

    Returns
    -------
    dict of int to float
        Thread count -> bytes read and written (6 rows of ``4 * width`` bytes per touched row)
        over the median time, GB/s.
    """
    if not 0 < touched <= n_rows:
        raise ValueError(f"touched rows must be in [1, n_rows={n_rows}], got {touched}")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_rows, width), dtype=np.float32)
    m = np.zeros_like(w)
    v = np.ones_like(w)
    nbytes = 6 * 4 * width * touched
    previous = numba.get_num_threads()
    times: dict[int, list[float]] = {t: [] for t in threads}
    try:
        for t in threads:  # compile, and fault the pages in
            numba.set_num_threads(t)
            _row_update(w, m, v, rng.choice(n_rows, touched, replace=False))
        for _ in range(repeats):  # thread counts interleaved: a slow spell hits them alike
            for t in threads:
                numba.set_num_threads(t)
                rows = rng.choice(n_rows, touched, replace=False)
                t0 = time.perf_counter()
                _row_update(w, m, v, rows)
                times[t].append(time.perf_counter() - t0)
    finally:
        numba.set_num_threads(previous)
    out = {t: nbytes / float(np.median(sec)) / 1e9 for t, sec in times.items()}
    return out
