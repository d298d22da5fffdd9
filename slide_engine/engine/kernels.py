"""Per-sample forward and backward kernels of SLIDE layers, each compiled serial and parallel.

A layer's activations for a batch of ``B`` samples are three arrays:

``ids``  int32 (B, cap)   active neuron ids of each sample (for a dense layer ``ids[i, a] == a``)
``cnt``  int32 (B,)       number of active neurons of each sample
``val``  float32 (B, cap) post-activation values (the output layer holds the softmax delta
                          ``p - t`` there after :func:`softmax_loss`)

The first layer reads the sparse input batch (CSR arrays + the batch's row numbers) and keeps its
weights input-major, ``w[D, H]``: a sample touches only the rows of its features. Every other layer
is neuron-major, ``w[n_out, n_in]``: an active neuron reads one contiguous row.

Each body ``_*_one(i, ...)`` handles sample ``i`` of the batch and is written once; the serial shell
(deterministic, used at one thread and in tests) and the parallel shell (``prange``, HOGWILD: two
threads may add into the same gradient row without a lock, losing an update at worst; no structure
is ever shared for writing) loop over it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from slide_engine.engine.adam import adam_rows_parallel, adam_rows_serial
from slide_engine.engine.rowwise import (
    group_pairs_parallel,
    group_pairs_serial,
    nm_forward_parallel,
    nm_forward_serial,
    nm_fused_parallel,
    nm_fused_serial,
    reduce_prev_delta_parallel,
    reduce_prev_delta_serial,
)

# ---------------------------------------------------------------- first layer (sparse input)


@njit(cache=True, fastmath=True)
def _input_forward_one(i, rows, x_indptr, x_indices, x_values, w, b, ids, cnt, val, dense, relu):
    r = rows[i]
    n = cnt[i]
    out = val[i]
    if dense:
        for k in range(n):
            out[k] = b[k]
        for p in range(x_indptr[r], x_indptr[r + 1]):
            xv = x_values[p]
            row = w[x_indices[p]]
            for k in range(n):
                out[k] += xv * row[k]
    else:
        act = ids[i]
        for a in range(n):
            out[a] = b[act[a]]
        for p in range(x_indptr[r], x_indptr[r + 1]):
            xv = x_values[p]
            row = w[x_indices[p]]
            for a in range(n):
                out[a] += xv * row[act[a]]
    if relu:
        for a in range(n):
            if out[a] < 0.0:
                out[a] = 0.0


@njit(cache=True)
def input_forward_serial(rows: np.ndarray, x_indptr: np.ndarray, x_indices: np.ndarray,
                         x_values: np.ndarray, w: np.ndarray, b: np.ndarray, ids: np.ndarray,
                         cnt: np.ndarray, val: np.ndarray, dense: bool, relu: bool) -> None:
    """Forward of the sparse first layer: ``val[i] = act(x_i @ w[:, ids[i]] + b[ids[i]])``.

    Parameters
    ----------
    rows : int64 (B,)
        Dataset row of each batch sample.
    x_indptr, x_indices, x_values : (N+1,), (nnz,), (nnz,)
        Input CSR of the whole dataset.
    w : float32 (D, H)
        Input-major weights. ``b`` is float32 (H,).
    ids, cnt, val : int32 (B, cap), int32 (B,), float32 (B, cap)
        Active set (read) and output values (written).
    dense : bool
        All ``H`` neurons active in order (contiguous, vectorised path).
    relu : bool
        Apply ReLU (hidden layer) or keep logits (output layer).
    """
    for i in range(rows.shape[0]):
        _input_forward_one(
            i, rows, x_indptr, x_indices, x_values, w, b, ids, cnt, val, dense, relu
        )


@njit(cache=True, parallel=True)
def input_forward_parallel(rows: np.ndarray, x_indptr: np.ndarray, x_indices: np.ndarray,
                           x_values: np.ndarray, w: np.ndarray, b: np.ndarray, ids: np.ndarray,
                           cnt: np.ndarray, val: np.ndarray, dense: bool, relu: bool) -> None:
    """Parallel twin of :func:`input_forward_serial` (same arguments)."""
    for i in prange(rows.shape[0]):
        _input_forward_one(
            i, rows, x_indptr, x_indices, x_values, w, b, ids, cnt, val, dense, relu
        )


@njit(cache=True, fastmath=True)
def _input_backward_one(i, rows, x_indptr, x_indices, x_values, g, stamp, step_no, ids, cnt,
                        delta, dense):
    n = cnt[i]
    d = delta[i]
    nonzero = False
    for a in range(n):
        if d[a] != 0.0:
            nonzero = True
            break
    if not nonzero:  # a sample without labels: no gradient, no row touched
        return
    r = rows[i]
    act = ids[i]
    for p in range(x_indptr[r], x_indptr[r + 1]):
        f = x_indices[p]
        xv = x_values[p]
        if stamp[f] != step_no:  # read first: rewriting a shared line would bounce it
            stamp[f] = step_no  # between threads; every writer writes the same value
        grow = g[f]
        if dense:
            for k in range(n):
                grow[k] += xv * d[k]
        else:
            for a in range(n):
                grow[act[a]] += xv * d[a]


@njit(cache=True)
def input_backward_serial(rows: np.ndarray, x_indptr: np.ndarray, x_indices: np.ndarray,
                          x_values: np.ndarray, g: np.ndarray, stamp: np.ndarray, step_no: int,
                          ids: np.ndarray, cnt: np.ndarray, delta: np.ndarray, dense: bool) -> None:
    """Accumulate the first layer's weight gradient ``g[f] += x_f * delta_i`` (HOGWILD rows).

    Parameters
    ----------
    rows, x_indptr, x_indices, x_values
        As in :func:`input_forward_serial`.
    g : float32 (D, H)
        Gradient accumulator, zero at batch start.
    stamp : int64 (D,)
        Set to ``step_no`` for every feature row that received gradient.
    step_no : int
        Current optimiser step.
    ids, cnt : int32 (B, cap), int32 (B,)
        Active set of the layer.
    delta : float32 (B, cap)
        Loss gradient w.r.t. the layer's pre-activations.
    dense : bool
        All neurons active in order.
    """
    for i in range(rows.shape[0]):
        _input_backward_one(
            i, rows, x_indptr, x_indices, x_values, g, stamp, step_no, ids, cnt, delta, dense
        )


@njit(cache=True, parallel=True)
def input_backward_parallel(rows: np.ndarray, x_indptr: np.ndarray, x_indices: np.ndarray,
                            x_values: np.ndarray, g: np.ndarray, stamp: np.ndarray, step_no: int,
                            ids: np.ndarray, cnt: np.ndarray, delta: np.ndarray,
                            dense: bool) -> None:
    """Parallel (HOGWILD) twin of :func:`input_backward_serial`."""
    for i in prange(rows.shape[0]):
        _input_backward_one(
            i, rows, x_indptr, x_indices, x_values, g, stamp, step_no, ids, cnt, delta, dense
        )


# ---------------------------------------------------------------- layers on a dense-ish input


@njit(cache=True, fastmath=True)
def _layer_forward_one(i, w, b, prev_ids, prev_cnt, prev_val, prev_dense, ids, cnt, val, relu):
    n = cnt[i]
    m = prev_cnt[i]
    x = prev_val[i]
    act = ids[i]
    pid = prev_ids[i]
    out = val[i]
    for a in range(n):
        j = act[a]
        row = w[j]
        acc = np.float32(0.0)
        if prev_dense:
            for q in range(m):
                acc += row[q] * x[q]
        else:
            for q in range(m):
                acc += row[pid[q]] * x[q]
        z = acc + b[j]
        out[a] = z if (z > 0.0 or not relu) else np.float32(0.0)


@njit(cache=True)
def layer_forward_serial(w: np.ndarray, b: np.ndarray, prev_ids: np.ndarray, prev_cnt: np.ndarray,
                         prev_val: np.ndarray, prev_dense: bool, ids: np.ndarray, cnt: np.ndarray,
                         val: np.ndarray, relu: bool) -> None:
    """Forward of a neuron-major layer: ``val[i, a] = act(w[ids[i, a]] . x_i + b[ids[i, a]])``.

    Parameters
    ----------
    w : float32 (n_out, n_in)
        Neuron-major weights. ``b`` is float32 (n_out,).
    prev_ids, prev_cnt, prev_val : int32 (B, cap_in), int32 (B,), float32 (B, cap_in)
        Activations of the previous layer (the sparse vector ``x_i``).
    prev_dense : bool
        The previous layer is dense (``prev_ids[i, q] == q``): contiguous dot products.
    ids, cnt, val : int32 (B, cap), int32 (B,), float32 (B, cap)
        Active set (read) and output values (written).
    relu : bool
        Apply ReLU (hidden layer) or keep logits (output layer).
    """
    for i in range(cnt.shape[0]):
        _layer_forward_one(i, w, b, prev_ids, prev_cnt, prev_val, prev_dense, ids, cnt, val, relu)


@njit(cache=True, parallel=True)
def layer_forward_parallel(w: np.ndarray, b: np.ndarray, prev_ids: np.ndarray,
                           prev_cnt: np.ndarray, prev_val: np.ndarray, prev_dense: bool,
                           ids: np.ndarray, cnt: np.ndarray, val: np.ndarray, relu: bool) -> None:
    """Parallel twin of :func:`layer_forward_serial`."""
    for i in prange(cnt.shape[0]):
        _layer_forward_one(i, w, b, prev_ids, prev_cnt, prev_val, prev_dense, ids, cnt, val, relu)


@njit(cache=True, fastmath=True)
def _layer_backward_one(i, w, g, gb, stamp, step_no, ids, cnt, delta, prev_ids, prev_cnt, prev_val,
                        prev_dense, prev_delta):
    n = cnt[i]
    m = prev_cnt[i]
    x = prev_val[i]
    d = delta[i]
    act = ids[i]
    pid = prev_ids[i]
    pd = prev_delta[i]
    for q in range(m):
        pd[q] = 0.0
    for a in range(n):
        da = d[a]
        if da == 0.0:  # exact zero gradient (e.g. a sample without labels): row untouched
            continue
        j = act[a]
        if stamp[j] != step_no:  # as in _input_backward_one
            stamp[j] = step_no
        gb[j] += da
        grow = g[j]
        wrow = w[j]
        if prev_dense:
            for q in range(m):
                grow[q] += da * x[q]
                pd[q] += da * wrow[q]
        else:
            for q in range(m):
                c = pid[q]
                grow[c] += da * x[q]
                pd[q] += da * wrow[c]
    for q in range(m):  # the previous layer is a hidden ReLU layer
        if x[q] <= 0.0:
            pd[q] = 0.0


@njit(cache=True)
def layer_backward_serial(w: np.ndarray, g: np.ndarray, gb: np.ndarray, stamp: np.ndarray,
                          step_no: int, ids: np.ndarray, cnt: np.ndarray, delta: np.ndarray,
                          prev_ids: np.ndarray, prev_cnt: np.ndarray, prev_val: np.ndarray,
                          prev_dense: bool, prev_delta: np.ndarray) -> None:
    """Accumulate a neuron-major layer's gradient and propagate delta to the previous layer.

    Parameters
    ----------
    w : float32 (n_out, n_in)
        Weights (read). ``g`` float32 (n_out, n_in) and ``gb`` float32 (n_out,) are the gradient
        accumulators (HOGWILD adds in the parallel twin).
    stamp : int64 (n_out,)
        Set to ``step_no`` for every neuron row that received gradient.
    step_no : int
        Current optimiser step.
    ids, cnt, delta : int32 (B, cap), int32 (B,), float32 (B, cap)
        Active set and loss gradient w.r.t. the pre-activations.
    prev_ids, prev_cnt, prev_val, prev_dense
        The previous (ReLU) layer's activations, as in :func:`layer_forward_serial`.
    prev_delta : float32 (B, cap_in)
        Written: loss gradient w.r.t. the previous layer's pre-activations.
    """
    for i in range(cnt.shape[0]):
        _layer_backward_one(i, w, g, gb, stamp, step_no, ids, cnt, delta, prev_ids, prev_cnt,
                            prev_val, prev_dense, prev_delta)


@njit(cache=True, parallel=True)
def layer_backward_parallel(w: np.ndarray, g: np.ndarray, gb: np.ndarray, stamp: np.ndarray,
                            step_no: int, ids: np.ndarray, cnt: np.ndarray, delta: np.ndarray,
                            prev_ids: np.ndarray, prev_cnt: np.ndarray, prev_val: np.ndarray,
                            prev_dense: bool, prev_delta: np.ndarray) -> None:
    """Parallel (HOGWILD) twin of :func:`layer_backward_serial`."""
    for i in prange(cnt.shape[0]):
        _layer_backward_one(i, w, g, gb, stamp, step_no, ids, cnt, delta, prev_ids, prev_cnt,
                            prev_val, prev_dense, prev_delta)


# ---------------------------------------------------------------- dense layer on a dense input
# Every sample touches every row here, so HOGWILD would collide on every sample: the gradient is
# computed row by row instead (one worker owns a row: no race, deterministic at any thread count).


@njit(cache=True, fastmath=True)
def _dense_grad_row(j, delta, x, g, gb, stamp, step_no):
    grow = g[j]
    n_in = grow.shape[0]
    touched = False
    for i in range(delta.shape[0]):
        dij = delta[i, j]
        if dij == 0.0:
            continue
        touched = True
        gb[j] += dij
        xi = x[i]
        for q in range(n_in):
            grow[q] += dij * xi[q]
    if touched:
        stamp[j] = step_no


@njit(cache=True, fastmath=True)
def _dense_backprop_one(i, delta, w, x, prev_delta):
    n_out, n_in = w.shape
    pd = prev_delta[i]
    xi = x[i]
    for q in range(n_in):
        pd[q] = 0.0
    for j in range(n_out):
        dij = delta[i, j]
        if dij == 0.0:
            continue
        wrow = w[j]
        for q in range(n_in):
            pd[q] += dij * wrow[q]
    for q in range(n_in):  # the previous layer is a hidden ReLU layer
        if xi[q] <= 0.0:
            pd[q] = 0.0


@njit(cache=True)
def dense_backward_serial(w: np.ndarray, g: np.ndarray, gb: np.ndarray, stamp: np.ndarray,
                          step_no: int, delta: np.ndarray, x: np.ndarray,
                          prev_delta: np.ndarray) -> None:
    """Gradient and back-propagated delta of a dense layer fed by a dense layer.

    Parameters
    ----------
    w, g : float32 (n_out, n_in)
        Weights (read) and gradient accumulator (added into); ``gb`` float32 (n_out,).
    stamp : int64 (n_out,)
        Set to ``step_no`` for every row that received gradient.
    step_no : int
        Current optimiser step.
    delta : float32 (B, n_out)
        Loss gradient w.r.t. the layer's pre-activations.
    x : float32 (B, n_in)
        The previous (ReLU) layer's values.
    prev_delta : float32 (B, n_in)
        Written: loss gradient w.r.t. the previous layer's pre-activations.
    """
    for j in range(w.shape[0]):
        _dense_grad_row(j, delta, x, g, gb, stamp, step_no)
    for i in range(delta.shape[0]):
        _dense_backprop_one(i, delta, w, x, prev_delta)


@njit(cache=True, parallel=True)
def dense_backward_parallel(w: np.ndarray, g: np.ndarray, gb: np.ndarray, stamp: np.ndarray,
                            step_no: int, delta: np.ndarray, x: np.ndarray,
                            prev_delta: np.ndarray) -> None:
    """Parallel twin of :func:`dense_backward_serial` (rows, then samples, owned by one worker)."""
    for j in prange(w.shape[0]):
        _dense_grad_row(j, delta, x, g, gb, stamp, step_no)
    for i in prange(delta.shape[0]):
        _dense_backprop_one(i, delta, w, x, prev_delta)


# ---------------------------------------------------------------- softmax cross-entropy


@njit(cache=True, fastmath=True)
def _softmax_loss_one(i, rows, y_indptr, y_indices, ids, cnt, val, labels_first, loss):
    r = rows[i]
    lo = y_indptr[r]
    n_lab = y_indptr[r + 1] - lo
    n = cnt[i]
    z = val[i]
    if n_lab == 0:  # no target: no loss, no gradient (documented in SlideNetwork)
        for a in range(n):
            z[a] = 0.0
        loss[i] = 0.0
        return
    zmax = z[0]
    for a in range(1, n):
        if z[a] > zmax:
            zmax = z[a]
    s = 0.0
    for a in range(n):
        s += math.exp(z[a] - zmax)
    lse = zmax + math.log(s)
    t = 1.0 / n_lab
    zlab = 0.0
    for p in range(n_lab):
        zlab += z[p] if labels_first else z[y_indices[lo + p]]
    loss[i] = lse - t * zlab
    for a in range(n):
        z[a] = math.exp(z[a] - lse)
    for p in range(n_lab):
        if labels_first:
            z[p] -= t
        else:
            z[y_indices[lo + p]] -= t


@njit(cache=True)
def softmax_loss_serial(rows: np.ndarray, y_indptr: np.ndarray, y_indices: np.ndarray,
                        ids: np.ndarray, cnt: np.ndarray, val: np.ndarray, labels_first: bool,
                        loss: np.ndarray) -> None:
    """Softmax cross-entropy over each sample's active neurons, target ``1/|labels|`` per label.

    Parameters
    ----------
    rows : int64 (B,)
        Dataset row of each batch sample.
    y_indptr, y_indices : int64 (N+1,), int32 (nnz_y,)
        Label CSR of the whole dataset.
    ids, cnt : int32 (B, cap), int32 (B,)
        Active set; every label of a sample must be active.
    val : float32 (B, cap)
        Logits in, ``softmax - target`` (the gradient w.r.t. the logits) out.
    labels_first : bool
        True: a sample's labels are its first active entries (sampled layer); False: the layer is
        dense and a label's position is its id.
    loss : float64 (B,)
        Written: per-sample loss (0 for a sample without labels).
    """
    for i in range(cnt.shape[0]):
        _softmax_loss_one(i, rows, y_indptr, y_indices, ids, cnt, val, labels_first, loss)


@njit(cache=True, parallel=True)
def softmax_loss_parallel(rows: np.ndarray, y_indptr: np.ndarray, y_indices: np.ndarray,
                          ids: np.ndarray, cnt: np.ndarray, val: np.ndarray, labels_first: bool,
                          loss: np.ndarray) -> None:
    """Parallel twin of :func:`softmax_loss_serial`."""
    for i in prange(cnt.shape[0]):
        _softmax_loss_one(i, rows, y_indptr, y_indices, ids, cnt, val, labels_first, loss)


@njit(cache=True)
def scatter_bias_grad(ids: np.ndarray, cnt: np.ndarray, delta: np.ndarray, gb: np.ndarray) -> bool:
    """Sum the batch's deltas into a bias gradient, serially (deterministic, no race).

    Used for the first layer, whose bias every sample touches (a HOGWILD add there would collide
    on every sample, not rarely).

    Parameters
    ----------
    ids, cnt, delta : int32 (B, cap), int32 (B,), float32 (B, cap)
        Active set and deltas of the layer.
    gb : float32 (n_out,)
        Bias gradient accumulator (added into).

    Returns
    -------
    bool
        Whether any delta was non-zero (whether the bias received gradient).
    """
    touched = False
    for i in range(cnt.shape[0]):
        for a in range(cnt[i]):
            if delta[i, a] != 0.0:
                gb[ids[i, a]] += delta[i, a]
                touched = True
    return touched


# ---------------------------------------------------------------- serial / parallel sets


class KernelSet(NamedTuple):
    """The per-sample and per-row kernels of one compilation mode (serial or parallel).

    ``group_pairs``, ``nm_*`` and ``reduce_prev_delta`` are the neuron-major kernels of
    :mod:`slide_engine.engine.rowwise` (``accumulate="rows"``).
    """

    input_forward: Callable
    input_backward: Callable
    layer_forward: Callable
    layer_backward: Callable
    dense_backward: Callable
    softmax_loss: Callable
    adam_rows: Callable
    group_pairs: Callable
    nm_forward: Callable
    nm_fused: Callable
    reduce_prev_delta: Callable
    parallel: bool


SERIAL = KernelSet(input_forward_serial, input_backward_serial, layer_forward_serial,
                   layer_backward_serial, dense_backward_serial, softmax_loss_serial,
                   adam_rows_serial, group_pairs_serial, nm_forward_serial, nm_fused_serial,
                   reduce_prev_delta_serial, False)
PARALLEL = KernelSet(input_forward_parallel, input_backward_parallel, layer_forward_parallel,
                     layer_backward_parallel, dense_backward_parallel, softmax_loss_parallel,
                     adam_rows_parallel, group_pairs_parallel, nm_forward_parallel,
                     nm_fused_parallel, reduce_prev_delta_parallel, True)
