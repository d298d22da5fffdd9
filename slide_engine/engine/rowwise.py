"""Neuron-major training of a sampled layer on a dense input (``accumulate="rows"``).

With SimHash-like sampling the samples of a batch share most active neurons (Amazon-670K shape:
776,000 (sample, neuron) pairs, 87,000 distinct rows). Working per pair reads and writes each
weight row up to ~9 times; working per distinct row reads it once. For a sampled layer fed by a
dense layer a training step therefore runs:

1. :func:`group_pairs_serial` (or its parallel twin), right after selection: the batch's
   (sample, position) pairs grouped by neuron. Neurons are split into :data:`N_PARTS` partitions
   by id (``id % N_PARTS``); the pairs are bucketed by partition (in sample order), then each
   partition is counting-sorted by neuron on its own (rows in order of first touch, the pairs of
   a row in sample order), so every sum below has a fixed order;
2. :func:`nm_forward_serial` (or its parallel twin): each distinct row ``w[j], b[j]`` is loaded
   once and dotted with the inputs of its samples, ``val[s, a] = act(w[j] . x_s + b[j])``;
3. (softmax / the layers above write the delta into ``val[s, a]`` or ``delta[s, a]``);
4. :func:`nm_fused_serial` (or its parallel twin): one pass per distinct row computes its gradient
   ``sum_s delta_sa x_s``, adds ``delta_sa w[j]`` (the weights before this step's update) into
   its partition's copy of the back-propagated delta, and applies the lazy Adam step to the row at
   once; :func:`reduce_prev_delta_serial` then sums the partitions' deltas in partition order and
   masks them by ReLU'.

A partition is one block of parallel work. Their number is fixed, whatever the thread count, so
every sum of these kernels has the same order at any thread count: given the same active sets
and inputs, the serial and parallel kernels add the same terms in the same order and give the
same bits, and no update is lost to a race. A training run above one thread is still not
deterministic as a whole: the selection's random top-up draws from per-thread streams (which
samples a thread serves depends on scheduling), and the first layer's HOGWILD updates race.
No gradient array is stored for the layer (343 MB less at Amazon-670K shape). Only lazy Adam
is supported (dense Adam must also visit the untouched rows).

Layout of the grouped pairs (``groups``): partition ``c`` holds the distinct rows
``unique[part_ptr[c] : part_ptr[c] + part_nu[c]]``; its ``k``-th row has the pairs
``u_ptr[part_ptr[c] + c + k] .. u_ptr[part_ptr[c] + c + k + 1] - 1`` of ``pair_sample`` and
``pair_pos`` (``ids[pair_sample[p], pair_pos[p]]`` is the row).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from slide_engine.engine.prefetch import prefetch_item, prefetch_row

#: partitions of the neurons (by id modulo, a power of two): the blocks of parallel work, each
#: with its own back-propagated-delta buffer; fixed, so that no sum depends on the thread count
N_PARTS = 16
_MASK = N_PARTS - 1
#: rows ahead whose weights (and moments) are prefetched
_AHEAD = 2


@njit(cache=True)
def _count_chunk(c, ids, cnt, hist):
    # hist[c, part]: pairs of sample chunk c in each partition
    n = cnt.shape[0]
    hist[c, :] = 0
    for i in range(c * n // N_PARTS, (c + 1) * n // N_PARTS):
        act = ids[i]
        for a in range(cnt[i]):
            hist[c, act[a] & _MASK] += 1


@njit(cache=True)
def _offsets(hist, part_ptr):
    # exclusive prefix over (partition, chunk): hist becomes each bucket's write cursor
    off = 0
    for part in range(N_PARTS):
        part_ptr[part] = off
        for c in range(N_PARTS):
            h = hist[c, part]
            hist[c, part] = off
            off += h
    part_ptr[N_PARTS] = off


@njit(cache=True)
def _bucket_chunk(c, ids, cnt, hist, tmp_j, tmp_s, tmp_a):
    # the pairs of sample chunk c into their partitions' buckets, in sample order
    n = cnt.shape[0]
    for i in range(c * n // N_PARTS, (c + 1) * n // N_PARTS):
        act = ids[i]
        for a in range(cnt[i]):
            j = act[a]
            part = j & _MASK
            pos = hist[c, part]
            hist[c, part] = pos + 1
            tmp_j[pos] = j
            tmp_s[pos] = i
            tmp_a[pos] = a


@njit(cache=True)
def _sort_part(part, part_ptr, tmp_j, tmp_s, tmp_a, slot_of, unique, u_ptr, pair_sample,
               pair_pos, part_nu):
    # counting sort of one partition's pairs by neuron (partitions own disjoint neurons, so
    # slot_of is shared without conflict); returns the largest number of pairs of one row
    lo = part_ptr[part]
    hi = part_ptr[part + 1]
    base = lo + part  # this partition's u_ptr entries: part_nu + 1 of them
    nu = 0
    for p in range(lo, hi):  # slots in order of first touch; u_ptr[base + u + 1] counts pairs
        j = tmp_j[p]
        u = slot_of[j]
        if u < 0:
            u = nu
            slot_of[j] = u
            unique[lo + u] = j
            u_ptr[base + u + 1] = 0
            nu += 1
        tmp_j[p] = u  # the pair's slot from here on
        u_ptr[base + u + 1] += 1
    largest = 0
    u_ptr[base] = lo
    for u in range(nu):
        largest = max(largest, u_ptr[base + u + 1])
        u_ptr[base + u + 1] += u_ptr[base + u]
    for p in range(lo, hi):  # scatter, using u_ptr[base + u] as the write cursor
        cur = base + tmp_j[p]
        pos = u_ptr[cur]
        pair_sample[pos] = tmp_s[p]
        pair_pos[pos] = tmp_a[p]
        u_ptr[cur] = pos + 1
    for u in range(nu - 1, 0, -1):  # cursors ended at the next row's start: shift back
        u_ptr[base + u] = u_ptr[base + u - 1]
    u_ptr[base] = lo
    for u in range(nu):
        slot_of[unique[lo + u]] = -1
    part_nu[part] = nu
    return largest


@njit(cache=True)
def group_pairs_serial(ids: np.ndarray, cnt: np.ndarray, hist: np.ndarray, tmp_j: np.ndarray,
                       tmp_s: np.ndarray, tmp_a: np.ndarray, slot_of: np.ndarray,
                       part_ptr: np.ndarray, part_nu: np.ndarray, unique: np.ndarray,
                       u_ptr: np.ndarray, pair_sample: np.ndarray, pair_pos: np.ndarray) -> int:
    """Group the batch's (sample, position) pairs by neuron, partition by partition.

    Parameters
    ----------
    ids, cnt : int32 (B, cap), int32 (B,)
        Active sets of the layer.
    hist : int64 (N_PARTS, N_PARTS)
        Scratch: pairs per (sample chunk, partition).
    tmp_j, tmp_s, tmp_a : int32 (>= B * cap,)
        Scratch: the pairs bucketed by partition.
    slot_of : int32 (n_out,)
        All -1 on entry and on return (scratch: the slot of each touched neuron).
    part_ptr : int64 (N_PARTS + 1,)
        Written: the first pair (and first distinct row) of each partition.
    part_nu : int64 (N_PARTS,)
        Written: distinct rows of each partition.
    unique : int32 (>= B * cap,)
        Written: the distinct rows (layout in the module docstring).
    u_ptr : int64 (>= B * cap + N_PARTS + 1,)
        Written: pair offsets of each distinct row.
    pair_sample, pair_pos : int32 (>= B * cap,)
        Written: each pair's sample ``s`` and position ``a`` (``ids[s, a]`` is the row).

    Returns
    -------
    int
        The largest number of pairs of one row (at most B: an active set holds no duplicates).
    """
    for c in range(N_PARTS):
        _count_chunk(c, ids, cnt, hist)
    _offsets(hist, part_ptr)
    for c in range(N_PARTS):
        _bucket_chunk(c, ids, cnt, hist, tmp_j, tmp_s, tmp_a)
    largest = 0
    for part in range(N_PARTS):
        largest = max(largest, _sort_part(part, part_ptr, tmp_j, tmp_s, tmp_a, slot_of, unique,
                                          u_ptr, pair_sample, pair_pos, part_nu))
    return largest


@njit(cache=True, parallel=True)
def group_pairs_parallel(ids: np.ndarray, cnt: np.ndarray, hist: np.ndarray, tmp_j: np.ndarray,
                         tmp_s: np.ndarray, tmp_a: np.ndarray, slot_of: np.ndarray,
                         part_ptr: np.ndarray, part_nu: np.ndarray, unique: np.ndarray,
                         u_ptr: np.ndarray, pair_sample: np.ndarray, pair_pos: np.ndarray) -> int:
    """Parallel twin of :func:`group_pairs_serial` (chunks, then partitions; same result)."""
    for c in prange(N_PARTS):
        _count_chunk(c, ids, cnt, hist)
    _offsets(hist, part_ptr)
    for c in prange(N_PARTS):
        _bucket_chunk(c, ids, cnt, hist, tmp_j, tmp_s, tmp_a)
    largest = np.zeros(N_PARTS, dtype=np.int64)
    for part in prange(N_PARTS):
        largest[part] = _sort_part(part, part_ptr, tmp_j, tmp_s, tmp_a, slot_of, unique, u_ptr,
                                   pair_sample, pair_pos, part_nu)
    return largest.max()


@njit(cache=True, fastmath=True)
def _nm_forward_block(c, part_ptr, part_nu, unique, u_ptr, pair_sample, pair_pos, w, b, x, val,
                      relu):
    n_in = w.shape[1]
    lo = part_ptr[c]
    hi = lo + part_nu[c]
    for u in range(lo, hi):
        if u + _AHEAD < hi:
            prefetch_row(w, unique[u + _AHEAD])
        j = unique[u]
        wr = w[j]
        bj = b[j]
        for p in range(u_ptr[u + c], u_ptr[u + c + 1]):
            s = pair_sample[p]
            xs = x[s]
            acc = np.float32(0.0)
            for q in range(n_in):
                acc += wr[q] * xs[q]
            z = acc + bj
            val[s, pair_pos[p]] = z if (z > 0.0 or not relu) else np.float32(0.0)


@njit(cache=True)
def nm_forward_serial(part_ptr: np.ndarray, part_nu: np.ndarray, unique: np.ndarray,
                      u_ptr: np.ndarray, pair_sample: np.ndarray, pair_pos: np.ndarray,
                      w: np.ndarray, b: np.ndarray, x: np.ndarray, val: np.ndarray,
                      relu: bool) -> None:
    """Neuron-major forward: ``val[s, a] = act(w[j] . x_s + b[j])`` for every pair of row ``j``.

    Parameters
    ----------
    part_ptr, part_nu, unique, u_ptr, pair_sample, pair_pos
        The grouped pairs (:func:`group_pairs_serial`).
    w : float32 (n_out, n_in)
        Neuron-major weights; ``b`` float32 (n_out,) the bias.
    x : float32 (B, n_in)
        The dense layer below.
    val : float32 (B, cap)
        Written at every pair's (sample, position).
    relu : bool
        Apply ReLU (hidden layer) or keep logits (output layer).
    """
    for c in range(N_PARTS):
        _nm_forward_block(c, part_ptr, part_nu, unique, u_ptr, pair_sample, pair_pos, w, b, x,
                          val, relu)


@njit(cache=True, parallel=True)
def nm_forward_parallel(part_ptr: np.ndarray, part_nu: np.ndarray, unique: np.ndarray,
                        u_ptr: np.ndarray, pair_sample: np.ndarray, pair_pos: np.ndarray,
                        w: np.ndarray, b: np.ndarray, x: np.ndarray, val: np.ndarray,
                        relu: bool) -> None:
    """Parallel twin of :func:`nm_forward_serial` (a partition per worker: no race)."""
    for c in prange(N_PARTS):
        _nm_forward_block(c, part_ptr, part_nu, unique, u_ptr, pair_sample, pair_pos, w, b, x,
                          val, relu)


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
def _nm_fused_block(c, part_ptr, part_nu, unique, u_ptr, pair_sample, pair_pos, delta, x, w, m, v,
                    b, mb, vb, row_step, stamp, step_no, lr, beta1, beta2, eps, corr, gacc, pd,
                    sbuf, dbuf):
    lo = part_ptr[c]
    hi = lo + part_nu[c]
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
            for p in range(u_ptr[u + _AHEAD + c], u_ptr[u + _AHEAD + c + 1]):  # its deltas
                prefetch_item(delta, pair_sample[p], pair_pos[p])
        n = 0  # the row's pairs with a non-zero delta (zero: e.g. a sample without labels)
        gbias = np.float32(0.0)
        for p in range(u_ptr[u + c], u_ptr[u + c + 1]):
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
def nm_fused_serial(part_ptr: np.ndarray, part_nu: np.ndarray, unique: np.ndarray,
                    u_ptr: np.ndarray, pair_sample: np.ndarray, pair_pos: np.ndarray,
                    delta: np.ndarray, x: np.ndarray, w: np.ndarray, m: np.ndarray,
                    v: np.ndarray, b: np.ndarray,
                    mb: np.ndarray, vb: np.ndarray, row_step: np.ndarray, stamp: np.ndarray,
                    step_no: int, lr: float, beta1: float, beta2: float, eps: float,
                    corr: np.ndarray, gacc: np.ndarray, pd: np.ndarray, sbuf: np.ndarray,
                    dbuf: np.ndarray) -> None:
    """Per distinct row: gradient, its share of the back-propagated delta, lazy Adam step.

    Parameters
    ----------
    part_ptr, part_nu, unique, u_ptr, pair_sample, pair_pos
        The grouped pairs (:func:`group_pairs_serial`).
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
    gacc : float32 (N_PARTS, n_in)
        Scratch: each partition's gradient row.
    pd : float32 (N_PARTS, B, n_in)
        Written: each partition's share of ``sum_a delta_sa w[ids[s, a]]`` (summed by
        :func:`reduce_prev_delta_serial`).
    sbuf, dbuf : int32 (N_PARTS, B), float32 (N_PARTS, B)
        Scratch: a row's samples and deltas (a row has at most one pair per sample).
    """
    for c in range(N_PARTS):
        _nm_fused_block(c, part_ptr, part_nu, unique, u_ptr, pair_sample, pair_pos, delta, x,
                        w, m, v, b, mb, vb, row_step, stamp, step_no, lr, beta1, beta2, eps, corr,
                        gacc[c], pd[c], sbuf[c], dbuf[c])


@njit(cache=True, parallel=True, error_model="numpy")
def nm_fused_parallel(part_ptr: np.ndarray, part_nu: np.ndarray, unique: np.ndarray,
                      u_ptr: np.ndarray, pair_sample: np.ndarray, pair_pos: np.ndarray,
                      delta: np.ndarray, x: np.ndarray, w: np.ndarray, m: np.ndarray,
                      v: np.ndarray, b: np.ndarray,
                      mb: np.ndarray, vb: np.ndarray, row_step: np.ndarray, stamp: np.ndarray,
                      step_no: int, lr: float, beta1: float, beta2: float, eps: float,
                      corr: np.ndarray, gacc: np.ndarray, pd: np.ndarray, sbuf: np.ndarray,
                      dbuf: np.ndarray) -> None:
    """Parallel twin of :func:`nm_fused_serial` (a partition per worker: no race, same result)."""
    for c in prange(N_PARTS):
        _nm_fused_block(c, part_ptr, part_nu, unique, u_ptr, pair_sample, pair_pos, delta, x,
                        w, m, v, b, mb, vb, row_step, stamp, step_no, lr, beta1, beta2, eps, corr,
                        gacc[c], pd[c], sbuf[c], dbuf[c])


@njit(cache=True, fastmath=True)
def _reduce_one(s, pd, x, prev_delta):
    out = prev_delta[s]
    xs = x[s]
    n_in = xs.shape[0]
    out[:n_in] = pd[0, s]
    for c in range(1, pd.shape[0]):  # partition order: the same sum at any thread count
        ps = pd[c, s]
        for q in range(n_in):
            out[q] += ps[q]
    for q in range(n_in):  # the layer below is a hidden ReLU layer
        if xs[q] <= 0.0:
            out[q] = 0.0


@njit(cache=True)
def reduce_prev_delta_serial(pd: np.ndarray, x: np.ndarray, prev_delta: np.ndarray) -> None:
    """Delta of the dense layer below: ``relu'(x_s) * sum_c pd[c, s]``, in partition order.

    Parameters
    ----------
    pd : float32 (N_PARTS, B, n_in)
        Per-partition shares (:func:`nm_fused_serial`).
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


def pair_buffers(n_out: int, n_in: int, batch: int, cap: int) -> dict[str, np.ndarray]:
    """Scratch of the neuron-major kernels for ``batch`` samples of up to ``cap`` active neurons."""
    n_pairs = batch * cap
    return {
        "hist": np.zeros((N_PARTS, N_PARTS), dtype=np.int64),
        "tmp_j": np.zeros(n_pairs, dtype=np.int32),
        "tmp_s": np.zeros(n_pairs, dtype=np.int32),
        "tmp_a": np.zeros(n_pairs, dtype=np.int32),
        "slot_of": np.full(n_out, -1, dtype=np.int32),
        "part_ptr": np.zeros(N_PARTS + 1, dtype=np.int64),
        "part_nu": np.zeros(N_PARTS, dtype=np.int64),
        "unique": np.zeros(n_pairs, dtype=np.int32),
        "u_ptr": np.zeros(n_pairs + N_PARTS + 1, dtype=np.int64),
        "pair_sample": np.zeros(n_pairs, dtype=np.int32),
        "pair_pos": np.zeros(n_pairs, dtype=np.int32),
        "gacc": np.zeros((N_PARTS, n_in), dtype=np.float32),
        "pd": np.zeros((N_PARTS, batch, n_in), dtype=np.float32),
        "sbuf": np.zeros((N_PARTS, batch), dtype=np.int32),
        "dbuf": np.zeros((N_PARTS, batch), dtype=np.float32),
    }
