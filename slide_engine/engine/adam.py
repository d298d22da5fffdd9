"""Adam over weight rows, dense (every row every step) or lazy (only rows stamped this step).

Rows are the unit of the optimiser: a feature row of the first layer (``w[D, H]``) or a neuron row
(weights plus that neuron's bias) of any other layer. Each row has its own step counter, so lazy
Adam applies the bias correction of the number of updates that row really received (a row first
touched at global step 1000 is corrected as step 1, as a fresh Adam would). In dense mode all
counters advance together and equal the global step, which is the reference C++ behaviour.

The update uses the bias-corrected step size of the reference code and TensorFlow,
``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``; ``w -= lr_t * m / (sqrt(v) + eps)``. The
factors ``sqrt(1 - beta2^t) / (1 - beta1^t)`` come from a table indexed by ``t``
(:func:`bias_correction`), not two powers per row.
The gradient accumulator of an updated row is zeroed for the next batch.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_BLOCKS = 256  # row blocks of the parallel update (touched rows are spread evenly)


# error_model="numpy" (here and on the shells, which compile this body into themselves): the
# default "python" model guards every division against zero, a branch that keeps LLVM from
# vectorising the element loop (the denominator sqrt(v) + eps is never zero)
@njit(cache=True, fastmath=True, error_model="numpy")
def _adam_block(lo, hi, w, g, m, v, b, gb, mb, vb, row_step, stamp, step_no, lazy, lr, beta1,
                beta2, eps, corr):
    # rows lo..hi-1 in one call: a call per row would pass (and reference-count) ten arrays for
    # each of the ~10^6 rows, costing more than skipping an untouched row
    b1 = np.float32(beta1)  # float32 constants keep the element loop in float32 (vectorised)
    b2 = np.float32(beta2)
    c1 = np.float32(1.0 - beta1)
    c2 = np.float32(1.0 - beta2)
    e = np.float32(eps)
    has_bias = b.shape[0] > 0
    for r in range(lo, hi):
        if lazy and stamp[r] != step_no:
            continue
        t = row_step[r] + 1
        row_step[r] = t
        lr_t = np.float32(lr * corr[t])
        wr = w[r]
        gr = g[r]
        mr = m[r]
        vr = v[r]
        for k in range(wr.shape[0]):
            gk = gr[k]
            mk = b1 * mr[k] + c1 * gk
            vk = b2 * vr[k] + c2 * gk * gk
            mr[k] = mk
            vr[k] = vk
            wr[k] -= lr_t * mk / (np.sqrt(vk) + e)
            gr[k] = 0.0
        if has_bias:
            gk = gb[r]
            mk = b1 * mb[r] + c1 * gk
            vk = b2 * vb[r] + c2 * gk * gk
            mb[r] = mk
            vb[r] = vk
            b[r] -= lr_t * mk / (np.sqrt(vk) + e)
            gb[r] = 0.0


@njit(cache=True, error_model="numpy")
def adam_rows_serial(w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, b: np.ndarray,
                     gb: np.ndarray, mb: np.ndarray, vb: np.ndarray, row_step: np.ndarray,
                     stamp: np.ndarray, step_no: int, lazy: bool, lr: float, beta1: float,
                     beta2: float, eps: float, corr: np.ndarray) -> None:
    """One Adam step over the rows of a weight matrix.

    Parameters
    ----------
    w, g, m, v : float32 (R, C)
        Weights, gradient accumulator (zeroed on update), first and second moments.
    b, gb, mb, vb : float32 (R,) or (0,)
        Per-row bias, its gradient and moments; empty arrays when the rows carry no bias
        (first-layer feature rows).
    row_step : int64 (R,)
        Per-row Adam step counters (incremented on update).
    stamp : int64 (R,)
        Step at which each row last received gradient.
    step_no : int
        The current global step.
    lazy : bool
        Update only rows with ``stamp == step_no`` (lazy) or every row (dense).
    lr, beta1, beta2, eps : float
        Adam hyperparameters.
    corr : float64 (> max row step,)
        ``corr[t] = sqrt(1 - beta2^t) / (1 - beta1^t)`` (see :func:`bias_correction`).
    """
    _adam_block(0, w.shape[0], w, g, m, v, b, gb, mb, vb, row_step, stamp, step_no, lazy, lr,
                beta1, beta2, eps, corr)


@njit(cache=True, parallel=True, error_model="numpy")
def adam_rows_parallel(w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, b: np.ndarray,
                       gb: np.ndarray, mb: np.ndarray, vb: np.ndarray, row_step: np.ndarray,
                       stamp: np.ndarray, step_no: int, lazy: bool, lr: float, beta1: float,
                       beta2: float, eps: float, corr: np.ndarray) -> None:
    """Parallel twin of :func:`adam_rows_serial` (blocks of rows per worker: no race)."""
    n_rows = w.shape[0]
    n_blocks = min(n_rows, _BLOCKS)
    for c in prange(n_blocks):
        _adam_block(c * n_rows // n_blocks, (c + 1) * n_rows // n_blocks, w, g, m, v, b, gb, mb,
                    vb, row_step, stamp, step_no, lazy, lr, beta1, beta2, eps, corr)


def bias_correction(beta1: float, beta2: float, n_steps: int) -> np.ndarray:
    """Adam's bias-correction factors for steps ``0 .. n_steps - 1``.

    Returns
    -------
    float64 (n_steps,)
        ``sqrt(1 - beta2^t) / (1 - beta1^t)`` at index ``t`` (index 0 unused, set to 0).
    """
    t = np.arange(n_steps, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    corr[0] = 0.0
    return corr
