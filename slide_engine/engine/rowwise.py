"""Row-owned gradients for a sampled layer on a dense input: the alternative to HOGWILD.

With ``SlideConfig.accumulate = "rows"`` a sampled layer fed by a dense layer does not add each
sample's gradient into a shared accumulator. Instead, per batch:

1. :func:`backprop_serial` (or its parallel twin) computes each sample's delta for the layer
   below (reading the weight rows, writing nothing shared);
2. :func:`group_pairs` sorts the batch's (sample, neuron, delta) pairs by neuron (a counting sort
   over the rows touched, in sample order, so every sum below has a fixed order);
3. :func:`fused_adam_serial` (or its parallel twin) visits each touched row once, on one worker:
   its gradient ``sum_i delta_ij x_i`` is summed in a small per-worker buffer and the lazy Adam
   step is applied at once.

No gradient array is stored for the layer (343 MB less at Amazon-670K shape), a row's gradient
is read and written once per batch instead of once per sample that touches it, no update is lost
to a race and the result does not depend on the thread count. Only lazy Adam is supported (dense
Adam must also visit the untouched rows).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_BLOCKS = 256  # blocks of touched rows for the parallel update


@njit(cache=True, fastmath=True)
def _backprop_one(i, w, ids, cnt, delta, prev_val, prev_cnt, prev_delta):
    m = prev_cnt[i]
    x = prev_val[i]
    d = delta[i]
    act = ids[i]
    pd = prev_delta[i]
    for q in range(m):
        pd[q] = 0.0
    for a in range(cnt[i]):
        da = d[a]
        if da == 0.0:
            continue
        wrow = w[act[a]]
        for q in range(m):
            pd[q] += da * wrow[q]
    for q in range(m):  # the previous layer is a hidden ReLU layer
        if x[q] <= 0.0:
            pd[q] = 0.0


@njit(cache=True)
def backprop_serial(w: np.ndarray, ids: np.ndarray, cnt: np.ndarray, delta: np.ndarray,
                    prev_val: np.ndarray, prev_cnt: np.ndarray, prev_delta: np.ndarray) -> None:
    """Delta of the dense layer below a sampled layer: ``pd_i = relu'(x_i) * sum_a d_ia w[ids_ia]``.

    Parameters
    ----------
    w : float32 (n_out, n_in)
        Neuron-major weights of the sampled layer (read).
    ids, cnt, delta : int32 (B, cap), int32 (B,), float32 (B, cap)
        Active sets and deltas of the sampled layer.
    prev_val, prev_cnt : float32 (B, n_in), int32 (B,)
        Values of the dense ReLU layer below.
    prev_delta : float32 (B, n_in)
        Written: its deltas.
    """
    for i in range(cnt.shape[0]):
        _backprop_one(i, w, ids, cnt, delta, prev_val, prev_cnt, prev_delta)


@njit(cache=True, parallel=True)
def backprop_parallel(w: np.ndarray, ids: np.ndarray, cnt: np.ndarray, delta: np.ndarray,
                      prev_val: np.ndarray, prev_cnt: np.ndarray, prev_delta: np.ndarray) -> None:
    """Parallel twin of :func:`backprop_serial` (samples are independent: no race)."""
    for i in prange(cnt.shape[0]):
        _backprop_one(i, w, ids, cnt, delta, prev_val, prev_cnt, prev_delta)


@njit(cache=True)
def group_pairs(ids: np.ndarray, cnt: np.ndarray, delta: np.ndarray, slot_of: np.ndarray,
                unique: np.ndarray, u_ptr: np.ndarray, pair_sample: np.ndarray,
                pair_delta: np.ndarray) -> int:
    """Counting sort of the batch's non-zero (sample, neuron, delta) pairs by neuron.

    Parameters
    ----------
    ids, cnt, delta : int32 (B, cap), int32 (B,), float32 (B, cap)
        Active sets and deltas of the layer.
    slot_of : int64 (n_out,)
        All -1 on entry and on return (scratch: the slot of each touched neuron).
    unique : int32 (>= pairs,)
        Written: the touched neurons, in order of first touch.
    u_ptr : int64 (>= pairs + 1,)
        Written: pairs of ``unique[u]`` are ``u_ptr[u] .. u_ptr[u+1]-1``.
    pair_sample, pair_delta : int32 (>= pairs,), float32 (>= pairs,)
        Written: each pair's sample and delta, grouped by neuron, in sample order.

    Returns
    -------
    int
        Number of touched neurons.
    """
    n_unique = 0
    for i in range(cnt.shape[0]):  # count pairs per touched neuron (u_ptr[u + 1] as counter)
        for a in range(cnt[i]):
            if delta[i, a] == 0.0:
                continue
            j = ids[i, a]
            if slot_of[j] < 0:
                slot_of[j] = n_unique
                unique[n_unique] = j
                u_ptr[n_unique + 1] = 0
                n_unique += 1
            u_ptr[slot_of[j] + 1] += 1
    u_ptr[0] = 0
    for u in range(n_unique):
        u_ptr[u + 1] += u_ptr[u]
    for i in range(cnt.shape[0]):  # scatter, using u_ptr[u] as the write cursor
        for a in range(cnt[i]):
            if delta[i, a] == 0.0:
                continue
            u = slot_of[ids[i, a]]
            pos = u_ptr[u]
            pair_sample[pos] = i
            pair_delta[pos] = delta[i, a]
            u_ptr[u] = pos + 1
    for u in range(n_unique - 1, 0, -1):  # cursors ended at the next group's start: shift back
        u_ptr[u] = u_ptr[u - 1]
    u_ptr[0] = 0
    for u in range(n_unique):
        slot_of[unique[u]] = -1
    return n_unique


@njit(cache=True, fastmath=True, error_model="numpy")
def _fused_block(lo, hi, unique, u_ptr, pair_sample, pair_delta, x, w, m, v, b, mb, vb, row_step,
                 stamp, step_no, lr, beta1, beta2, eps, corr, gacc):
    # error_model="numpy": see slide_engine.engine.adam (vectorised Adam loop)
    b1 = np.float32(beta1)
    b2 = np.float32(beta2)
    c1 = np.float32(1.0 - beta1)
    c2 = np.float32(1.0 - beta2)
    e = np.float32(eps)
    n_in = w.shape[1]
    for u in range(lo, hi):
        j = unique[u]
        for q in range(n_in):
            gacc[q] = 0.0
        gbias = np.float32(0.0)
        for p in range(u_ptr[u], u_ptr[u + 1]):
            d = pair_delta[p]
            xi = x[pair_sample[p]]
            gbias += d
            for q in range(n_in):
                gacc[q] += d * xi[q]
        stamp[j] = step_no
        t = row_step[j] + 1
        row_step[j] = t
        lr_t = np.float32(lr * corr[t])
        wr = w[j]
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
def fused_adam_serial(n_unique: int, unique: np.ndarray, u_ptr: np.ndarray,
                      pair_sample: np.ndarray, pair_delta: np.ndarray, x: np.ndarray,
                      w: np.ndarray, m: np.ndarray, v: np.ndarray, b: np.ndarray, mb: np.ndarray,
                      vb: np.ndarray, row_step: np.ndarray, stamp: np.ndarray, step_no: int,
                      lr: float, beta1: float, beta2: float, eps: float, corr: np.ndarray,
                      gacc: np.ndarray) -> None:
    """Gradient of each touched row from its grouped pairs, then its lazy Adam step.

    Parameters
    ----------
    n_unique, unique, u_ptr, pair_sample, pair_delta
        Output of :func:`group_pairs`.
    x : float32 (B, n_in)
        The dense layer below (the sampled layer's input).
    w, m, v : float32 (n_out, n_in)
        Weights and Adam moments; ``b``, ``mb``, ``vb`` float32 (n_out,) the bias and its moments.
    row_step, stamp : int64 (n_out,)
        Per-row Adam steps (incremented) and last-gradient steps (set to ``step_no``).
    step_no : int
        The current step.
    lr, beta1, beta2, eps : float
        Adam hyperparameters; ``corr`` float64 the bias-correction table
        (:func:`slide_engine.engine.adam.bias_correction`).
    gacc : float32 (T, n_in)
        Per-block gradient scratch (T >= 1 serial, >= number of blocks parallel).
    """
    _fused_block(0, n_unique, unique, u_ptr, pair_sample, pair_delta, x, w, m, v, b, mb, vb,
                 row_step, stamp, step_no, lr, beta1, beta2, eps, corr, gacc[0])


@njit(cache=True, parallel=True, error_model="numpy")
def fused_adam_parallel(n_unique: int, unique: np.ndarray, u_ptr: np.ndarray,
                        pair_sample: np.ndarray, pair_delta: np.ndarray, x: np.ndarray,
                        w: np.ndarray, m: np.ndarray, v: np.ndarray, b: np.ndarray,
                        mb: np.ndarray, vb: np.ndarray, row_step: np.ndarray, stamp: np.ndarray,
                        step_no: int, lr: float, beta1: float, beta2: float, eps: float,
                        corr: np.ndarray, gacc: np.ndarray) -> None:
    """Parallel twin of :func:`fused_adam_serial`: blocks of touched rows, one per worker."""
    n_blocks = min(max(n_unique, 1), gacc.shape[0])
    for c in prange(n_blocks):
        _fused_block(c * n_unique // n_blocks, (c + 1) * n_unique // n_blocks, unique, u_ptr,
                     pair_sample, pair_delta, x, w, m, v, b, mb, vb, row_step, stamp, step_no,
                     lr, beta1, beta2, eps, corr, gacc[c])


def pair_buffers(n_out: int, n_in: int, n_pairs: int) -> dict[str, np.ndarray]:
    """Scratch of :func:`group_pairs` and the fused update for ``n_pairs`` pairs per batch."""
    return {
        "slot_of": np.full(n_out, -1, dtype=np.int64),
        "unique": np.zeros(n_pairs, dtype=np.int32),
        "u_ptr": np.zeros(n_pairs + 1, dtype=np.int64),
        "pair_sample": np.zeros(n_pairs, dtype=np.int32),
        "pair_delta": np.zeros(n_pairs, dtype=np.float32),
        "gacc": np.zeros((_BLOCKS, n_in), dtype=np.float32),
    }
