"""Neuron-major training of a sampled layer on a dense input (``accumulate="rows"``).

With SimHash-like sampling the samples of a batch share most active neurons (Amazon-670K shape:
776,000 (sample, neuron) pairs, 87,000 distinct rows). Working per pair reads and writes each
weight row up to ~9 times; working per distinct row reads it once. For a sampled layer fed by a
dense layer a training step therefore runs:

1. :func:`group_pairs`, right after selection: a counting sort of the batch's (sample, position)
   pairs by neuron (distinct rows in order of first touch, pairs of a row in sample order, so every
   sum below has a fixed order);
2. :func:`nm_forward_serial` (or its parallel twin): each distinct row ``w[j], b[j]`` is loaded
   once and dotted with the inputs of its samples, ``val[s, a] = act(w[j] . x_s + b[j])``;
3. (softmax / the layers above write the delta into ``val[s, a]`` or ``delta[s, a]``);
4. :func:`nm_fused_serial` (or its parallel twin): one pass per distinct row computes its gradient
   ``sum_s delta_sa x_s`` in a small per-block buffer, adds ``delta_sa w[j]`` (the weights before
   this step's update) into a per-block copy of the back-propagated delta, and applies the lazy
   Adam step to the row at once; the per-block deltas are then summed in block order and masked by
   ReLU' (:func:`reduce_prev_delta_serial`).

The distinct rows are split into :data:`N_BLOCKS` blocks of about equal work
(:func:`block_bounds`), whatever the thread count: every sum has the same order at 1 or 2 threads,
so the results do not depend on the thread count (up to 16 threads) and no update is lost to a
race. No gradient array is stored for the layer (343 MB less at Amazon-670K shape). Only lazy
Adam is supported (dense Adam must also visit the untouched rows).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from slide_engine.engine.prefetch import prefetch_row

#: blocks of distinct rows (each with its own back-propagated-delta buffer); a fixed number, so
#: that the order of every sum, hence the result, is the same at any thread count up to it
N_BLOCKS = 16
#: work of a row's Adam step (three random row reads and writes) in units of one pair's work
_ROW_COST = 8
#: rows ahead whose weights (and moments) are prefetched
_AHEAD = 2


@njit(cache=True)
def group_pairs(ids: np.ndarray, cnt: np.ndarray, slot_of: np.ndarray, pair_slot: np.ndarray,
                unique: np.ndarray, u_ptr: np.ndarray, pair_sample: np.ndarray,
                pair_pos: np.ndarray) -> int:
    """Counting sort of the batch's (sample, position) pairs by neuron.

    Parameters
    ----------
    ids, cnt : int32 (B, cap), int32 (B,)
        Active sets of the layer.
    slot_of : int32 (n_out,)
        All -1 on entry and on return (scratch: the slot of each touched neuron).
    pair_slot : int32 (B, cap)
        Scratch: the slot of each pair.
    unique : int32 (>= B * cap,)
        Written: the touched neurons, in order of first touch.
    u_ptr : int64 (>= B * cap + 1,)
        Written: the pairs of ``unique[u]`` are ``u_ptr[u] .. u_ptr[u+1]-1``.
    pair_sample, pair_pos : int32 (>= B * cap,)
        Written: each pair's sample ``s`` and position ``a`` (``ids[s, a]`` is the neuron),
        grouped by neuron, in sample order within a group.

    Returns
    -------
    int
        Number of touched neurons.
    """
    n_unique = 0
    for i in range(cnt.shape[0]):  # slots in order of first touch; u_ptr[u + 1] counts pairs
        act = ids[i]
        sl = pair_slot[i]
        for a in range(cnt[i]):
            j = act[a]
            u = slot_of[j]
            if u < 0:
                u = n_unique
                slot_of[j] = u
                unique[u] = j
                u_ptr[u + 1] = 0
                n_unique += 1
            sl[a] = u
            u_ptr[u + 1] += 1
    u_ptr[0] = 0
    for u in range(n_unique):
        u_ptr[u + 1] += u_ptr[u]
    for i in range(cnt.shape[0]):  # scatter, using u_ptr[u] as the write cursor
        sl = pair_slot[i]
        for a in range(cnt[i]):
            u = sl[a]
            pos = u_ptr[u]
            pair_sample[pos] = i
            pair_pos[pos] = a
            u_ptr[u] = pos + 1
    for u in range(n_unique - 1, 0, -1):  # cursors ended at the next group's start: shift back
        u_ptr[u] = u_ptr[u - 1]
    u_ptr[0] = 0
    for u in range(n_unique):
        slot_of[unique[u]] = -1
    return n_unique


@njit(cache=True)
def block_bounds(n_unique: int, u_ptr: np.ndarray, bounds: np.ndarray) -> int:
    """Split the distinct rows into ``len(bounds) - 1`` consecutive blocks of about equal work.

    Parameters
    ----------
    n_unique : int
        Number of distinct rows (:func:`group_pairs`).
    u_ptr : int64 (>= n_unique + 1,)
        Pair offsets of the rows; a row's work is its pairs plus a fixed cost for its Adam step.
    bounds : int64 (n_blocks + 1,)
        Written: block ``c`` holds rows ``bounds[c] .. bounds[c+1]-1``.

    Returns
    -------
    int
        The largest number of pairs of one row (at most the batch size: a sample's active set
        holds no duplicates).
    """
    n_blocks = bounds.shape[0] - 1
    total = u_ptr[n_unique] + _ROW_COST * n_unique
    u = 0
    bounds[0] = 0
    for c in range(1, n_blocks):
        target = total * c // n_blocks
        while u < n_unique and u_ptr[u] + _ROW_COST * u < target:
            u += 1
        bounds[c] = u
    bounds[n_blocks] = n_unique
    largest = 0
    for u in range(n_unique):
        largest = max(largest, u_ptr[u + 1] - u_ptr[u])
    return largest


@njit(cache=True, fastmath=True)
def _nm_forward_block(lo, hi, unique, u_ptr, pair_sample, pair_pos, w, b, x, val, relu):
    n_in = w.shape[1]
    for u in range(lo, hi):
        if u + _AHEAD < hi:
            prefetch_row(w, unique[u + _AHEAD])
        j = unique[u]
        wr = w[j]
        bj = b[j]
        for p in range(u_ptr[u], u_ptr[u + 1]):
            s = pair_sample[p]
            xs = x[s]
            acc = np.float32(0.0)
            for q in range(n_in):
                acc += wr[q] * xs[q]
            z = acc + bj
            val[s, pair_pos[p]] = z if (z > 0.0 or not relu) else np.float32(0.0)


@njit(cache=True)
def nm_forward_serial(bounds: np.ndarray, unique: np.ndarray, u_ptr: np.ndarray,
                      pair_sample: np.ndarray, pair_pos: np.ndarray, w: np.ndarray, b: np.ndarray,
                      x: np.ndarray, val: np.ndarray, relu: bool) -> None:
    """Neuron-major forward: ``val[s, a] = act(w[j] . x_s + b[j])`` for every pair of row ``j``.

    Parameters
    ----------
    bounds : int64 (n_blocks + 1,)
        Blocks of distinct rows (:func:`block_bounds`).
    unique, u_ptr, pair_sample, pair_pos
        The grouped pairs (:func:`group_pairs`).
    w : float32 (n_out, n_in)
        Neuron-major weights; ``b`` float32 (n_out,) the bias.
    x : float32 (B, n_in)
        The dense layer below.
    val : float32 (B, cap)
        Written at every pair's (sample, position).
    relu : bool
        Apply ReLU (hidden layer) or keep logits (output layer).
    """
    _nm_forward_block(bounds[0], bounds[-1], unique, u_ptr, pair_sample, pair_pos, w, b, x, val,
                      relu)


@njit(cache=True, parallel=True)
def nm_forward_parallel(bounds: np.ndarray, unique: np.ndarray, u_ptr: np.ndarray,
                        pair_sample: np.ndarray, pair_pos: np.ndarray, w: np.ndarray,
                        b: np.ndarray, x: np.ndarray, val: np.ndarray, relu: bool) -> None:
    """Parallel twin of :func:`nm_forward_serial` (a block of rows per worker: no race)."""
    for c in prange(bounds.shape[0] - 1):
        _nm_forward_block(bounds[c], bounds[c + 1], unique, u_ptr, pair_sample, pair_pos, w, b,
                          x, val, relu)


# The two loops over a row's pairs take four pairs at a time: a pair at a time re-reads and
# re-writes the whole accumulator row per pair and runs ~3x slower (measured, 1 thread).


@njit(cache=True, fastmath=True)
def _gather_sum(x, sbuf, dbuf, n, out):
    # out = sum_k dbuf[k] * x[sbuf[k]], k < n
    n_in = out.shape[0]
    out[:] = 0.0
    k = 0
    while k + 4 <= n:
        s0, s1, s2, s3 = sbuf[k], sbuf[k + 1], sbuf[k + 2], sbuf[k + 3]
        d0, d1, d2, d3 = dbuf[k], dbuf[k + 1], dbuf[k + 2], dbuf[k + 3]
        for q in range(n_in):
            out[q] += d0 * x[s0, q] + d1 * x[s1, q] + d2 * x[s2, q] + d3 * x[s3, q]
        k += 4
    while k < n:
        s0 = sbuf[k]
        d0 = dbuf[k]
        for q in range(n_in):
            out[q] += d0 * x[s0, q]
        k += 1


@njit(cache=True, fastmath=True)
def _scatter_add(row, sbuf, dbuf, n, out):
    # out[sbuf[k]] += dbuf[k] * row, k < n (sbuf holds distinct samples)
    n_in = row.shape[0]
    k = 0
    while k + 4 <= n:
        s0, s1, s2, s3 = sbuf[k], sbuf[k + 1], sbuf[k + 2], sbuf[k + 3]
        d0, d1, d2, d3 = dbuf[k], dbuf[k + 1], dbuf[k + 2], dbuf[k + 3]
        for q in range(n_in):
            rq = row[q]
            out[s0, q] += d0 * rq
            out[s1, q] += d1 * rq
            out[s2, q] += d2 * rq
            out[s3, q] += d3 * rq
        k += 4
    while k < n:
        s0 = sbuf[k]
        d0 = dbuf[k]
        for q in range(n_in):
            out[s0, q] += d0 * row[q]
        k += 1


# error_model="numpy": the default "python" model guards the division against zero, a branch that
# keeps LLVM from vectorising the Adam loop (see slide_engine.engine.adam)
@njit(cache=True, fastmath=True, error_model="numpy")
def _nm_fused_block(lo, hi, unique, u_ptr, pair_sample, pair_pos, delta, x, w, m, v, b, mb, vb,
                    row_step, stamp, step_no, lr, beta1, beta2, eps, corr, gacc, pd, sbuf, dbuf):
    b1 = np.float32(beta1)  # float32 constants keep the element loops in float32
    b2 = np.float32(beta2)
    c1 = np.float32(1.0 - beta1)
    c2 = np.float32(1.0 - beta2)
    e = np.float32(eps)
    n_in = w.shape[1]
    pd[:] = 0.0
    for u in range(lo, hi):
        if u + _AHEAD < hi:  # the rows' first accesses would otherwise wait for memory
            jn = unique[u + _AHEAD]
            prefetch_row(w, jn)
            prefetch_row(m, jn)
            prefetch_row(v, jn)
        n = 0  # the row's pairs with a non-zero delta (zero: e.g. a sample without labels)
        gbias = np.float32(0.0)
        for p in range(u_ptr[u], u_ptr[u + 1]):
            s = pair_sample[p]
            d = delta[s, pair_pos[p]]
            if d != 0.0:
                sbuf[n] = s
                dbuf[n] = d
                gbias += d
                n += 1
        if n == 0:  # lazy Adam: a row without gradient is not stepped
            continue
        j = unique[u]
        wr = w[j]
        _gather_sum(x, sbuf, dbuf, n, gacc)
        _scatter_add(wr, sbuf, dbuf, n, pd)  # the weights before this step's update
        stamp[j] = step_no
        t = row_step[j] + 1
        row_step[j] = t
        lr_t = np.float32(lr * corr[t])
        mr = m[j]
        vr = v[j]
        for q in range(n_in):
            gk = gacc[q]
            mk = b1 * mr[q] + c1 * gk
            vk = b2 * vr[q] + c2 * gk * gk
            mr[q] = mk
            vr[q] = vk
            wr[q] -= lr_t * mk / (np.sqrt(vk) + e)
        mk = b1 * mb[j] + c1 * gbias
        vk = b2 * vb[j] + c2 * gbias * gbias
        mb[j] = mk
        vb[j] = vk
        b[j] -= lr_t * mk / (np.sqrt(vk) + e)


@njit(cache=True, error_model="numpy")
def nm_fused_serial(bounds: np.ndarray, unique: np.ndarray, u_ptr: np.ndarray,
                    pair_sample: np.ndarray, pair_pos: np.ndarray, delta: np.ndarray,
                    x: np.ndarray, w: np.ndarray, m: np.ndarray, v: np.ndarray, b: np.ndarray,
                    mb: np.ndarray, vb: np.ndarray, row_step: np.ndarray, stamp: np.ndarray,
                    step_no: int, lr: float, beta1: float, beta2: float, eps: float,
                    corr: np.ndarray, gacc: np.ndarray, pd: np.ndarray, sbuf: np.ndarray,
                    dbuf: np.ndarray) -> None:
    """Per distinct row: gradient, its share of the back-propagated delta, lazy Adam step.

    Parameters
    ----------
    bounds, unique, u_ptr, pair_sample, pair_pos
        Blocks and grouped pairs (:func:`block_bounds`, :func:`group_pairs`).
    delta : float32 (B, cap)
        Loss gradient w.r.t. the layer's pre-activations, at each pair's (sample, position).
    x : float32 (B, n_in)
        The dense layer below (the layer's input).
    w, m, v : float32 (n_out, n_in)
        Weights and Adam moments; ``b``, ``mb``, ``vb`` float32 (n_out,) the bias and its moments.
    row_step, stamp : int64 (n_out,)
        Per-row Adam steps (incremented) and last-gradient steps (set to ``step_no``) of the rows
        with a non-zero delta.
    step_no : int
        The current step.
    lr, beta1, beta2, eps : float
        Adam hyperparameters; ``corr`` float64 the bias-correction table
        (:func:`slide_engine.engine.adam.bias_correction`).
    gacc : float32 (n_blocks, n_in)
        Scratch: each block's gradient row.
    pd : float32 (n_blocks, B, n_in)
        Written: each block's share of ``sum_a delta_sa w[ids[s, a]]`` (summed by
        :func:`reduce_prev_delta_serial`).
    sbuf, dbuf : int32 (n_blocks, B), float32 (n_blocks, B)
        Scratch: a row's samples and deltas (a row has at most one pair per sample).
    """
    for c in range(bounds.shape[0] - 1):
        _nm_fused_block(bounds[c], bounds[c + 1], unique, u_ptr, pair_sample, pair_pos, delta, x,
                        w, m, v, b, mb, vb, row_step, stamp, step_no, lr, beta1, beta2, eps, corr,
                        gacc[c], pd[c], sbuf[c], dbuf[c])


@njit(cache=True, parallel=True, error_model="numpy")
def nm_fused_parallel(bounds: np.ndarray, unique: np.ndarray, u_ptr: np.ndarray,
                      pair_sample: np.ndarray, pair_pos: np.ndarray, delta: np.ndarray,
                      x: np.ndarray, w: np.ndarray, m: np.ndarray, v: np.ndarray, b: np.ndarray,
                      mb: np.ndarray, vb: np.ndarray, row_step: np.ndarray, stamp: np.ndarray,
                      step_no: int, lr: float, beta1: float, beta2: float, eps: float,
                      corr: np.ndarray, gacc: np.ndarray, pd: np.ndarray, sbuf: np.ndarray,
                    dbuf: np.ndarray) -> None:
    """Parallel twin of :func:`nm_fused_serial` (a block per worker: no race, same result)."""
    for c in prange(bounds.shape[0] - 1):
        _nm_fused_block(bounds[c], bounds[c + 1], unique, u_ptr, pair_sample, pair_pos, delta, x,
                        w, m, v, b, mb, vb, row_step, stamp, step_no, lr, beta1, beta2, eps, corr,
                        gacc[c], pd[c], sbuf[c], dbuf[c])


@njit(cache=True, fastmath=True)
def _reduce_one(s, pd, x, prev_delta):
    out = prev_delta[s]
    xs = x[s]
    n_in = xs.shape[0]
    out[:n_in] = pd[0, s]
    for c in range(1, pd.shape[0]):  # block order: the same sum at any thread count
        ps = pd[c, s]
        for q in range(n_in):
            out[q] += ps[q]
    for q in range(n_in):  # the layer below is a hidden ReLU layer
        if xs[q] <= 0.0:
            out[q] = 0.0


@njit(cache=True)
def reduce_prev_delta_serial(pd: np.ndarray, x: np.ndarray, prev_delta: np.ndarray) -> None:
    """Delta of the dense layer below: ``relu'(x_s) * sum_c pd[c, s]``, summed in block order.

    Parameters
    ----------
    pd : float32 (n_blocks, B, n_in)
        Per-block shares (:func:`nm_fused_serial`).
    x : float32 (B, n_in)
        Values of the dense ReLU layer below.
    prev_delta : float32 (B, >= n_in)
        Written: its deltas.
    """
    for s in range(x.shape[0]):
        _reduce_one(s, pd, x, prev_delta)


@njit(cache=True, parallel=True)
def reduce_prev_delta_parallel(pd: np.ndarray, x: np.ndarray, prev_delta: np.ndarray) -> None:
    """Parallel twin of :func:`reduce_prev_delta_serial` (samples are independent)."""
    for s in prange(x.shape[0]):
        _reduce_one(s, pd, x, prev_delta)


def pair_buffers(
    n_out: int, n_in: int, batch: int, cap: int, threads: int
) -> dict[str, np.ndarray]:
    """Scratch of the neuron-major kernels for ``batch`` samples of up to ``cap`` active neurons.

    ``max(N_BLOCKS, threads)`` blocks: results do not depend on the thread count up to
    :data:`N_BLOCKS` threads.
    """
    n_pairs = batch * cap
    n_blocks = max(N_BLOCKS, threads)
    return {
        "slot_of": np.full(n_out, -1, dtype=np.int32),
        "pair_slot": np.zeros((batch, cap), dtype=np.int32),
        "unique": np.zeros(n_pairs, dtype=np.int32),
        "u_ptr": np.zeros(n_pairs + 1, dtype=np.int64),
        "pair_sample": np.zeros(n_pairs, dtype=np.int32),
        "pair_pos": np.zeros(n_pairs, dtype=np.int32),
        "bounds": np.zeros(n_blocks + 1, dtype=np.int64),
        "gacc": np.zeros((n_blocks, n_in), dtype=np.float32),
        "pd": np.zeros((n_blocks, batch, n_in), dtype=np.float32),
        "sbuf": np.zeros((n_blocks, batch), dtype=np.int32),
        "dbuf": np.zeros((n_blocks, batch), dtype=np.float32),
    }
