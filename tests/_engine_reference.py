"""A float64 NumPy reference of one SLIDE training step, for the engine's oracle tests.

Layers are given neuron-major (``w[n_out, n_in]``, the first layer transposed from the engine's
input-major storage). ``active[l][i]`` lists the neurons of layer ``l`` computed for sample ``i``
(None: all); an inactive neuron outputs 0. The output softmax runs over the active neurons only,
against ``1/|labels|`` on each label; a sample without labels contributes nothing.
"""

from __future__ import annotations

import numpy as np

from slide_bench.data import XCData


def toy_data(n: int = 24, n_features: int = 40, n_labels: int = 15, seed: int = 0,
             all_features: bool = False, unlabelled_first: bool = True) -> XCData:
    """Random sparse points with 1-3 labels (row 0 none when ``unlabelled_first``), 2-6 features.

    Feature values are positive (0.5-2.0); ``all_features`` gives every point every feature.
    """
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        k = n_features if all_features else int(rng.integers(2, 7))
        xs.append(np.sort(rng.choice(n_features, size=k, replace=False)))
        n_y = 0 if (i == 0 and unlabelled_first) else int(rng.integers(1, 4))
        ys.append(np.sort(rng.choice(n_labels, size=n_y, replace=False)))
    x_indptr = np.concatenate([[0], np.cumsum([len(r) for r in xs])]).astype(np.int64)
    y_indptr = np.concatenate([[0], np.cumsum([len(r) for r in ys])]).astype(np.int64)
    x_values = rng.uniform(0.5, 2.0, size=int(x_indptr[-1])).astype(np.float32)
    return XCData(x_indptr, np.concatenate(xs).astype(np.int32), x_values, y_indptr,
                  np.concatenate(ys).astype(np.int32), n_features, n_labels)


def dense_inputs(data: XCData, rows: np.ndarray) -> np.ndarray:
    """Dense float64 (B, D) copy of the input rows."""
    x = np.zeros((len(rows), data.n_features))
    for i, r in enumerate(rows):
        lo, hi = data.x_indptr[r], data.x_indptr[r + 1]
        x[i, data.x_indices[lo:hi]] = data.x_values[lo:hi]
    return x


def labels_of(data: XCData, r: int) -> np.ndarray:
    """Label ids of dataset row ``r``."""
    return data.y_indices[data.y_indptr[r] : data.y_indptr[r + 1]]


def reference_step(ws, bs, data, rows, active=None, with_deltas=False):
    """Loss, gradients and touched rows of one batch.

    Parameters
    ----------
    ws, bs : list of float64 arrays
        Neuron-major weights (n_out, n_in) and biases (n_out,) of each layer.
    data : XCData
        Dataset; ``rows`` int (B,) the batch.
    active : list of list of arrays, optional
        ``active[l][i]``: active neurons of layer l for sample i (None entries: all).
    with_deltas : bool
        Also return each layer's deltas.

    Returns
    -------
    loss : float
        Mean over labelled samples.
    gw, gb : list of float64 arrays
        Gradients of weights and biases (summed over the batch).
    touched : list of bool arrays
        Per layer, the optimiser rows that received gradient: input features for the first layer
        (its rows), neurons otherwise.
    deltas : list of float64 (B, n_out) arrays, only ``with_deltas``
        Per layer, the loss gradient w.r.t. each sample's pre-activations (zero for a sample
        without labels and for inactive neurons).
    """
    n_layers = len(ws)
    x = dense_inputs(data, rows)
    gw = [np.zeros_like(w) for w in ws]
    gb = [np.zeros_like(b) for b in bs]
    touched = [np.zeros(ws[0].shape[1], bool)] + [np.zeros(w.shape[0], bool) for w in ws[1:]]
    deltas = [np.zeros((len(rows), w.shape[0])) for w in ws]
    losses = []
    for i, r in enumerate(rows):
        labels = labels_of(data, r)
        acts = [x[i]]
        masks = []
        for li, (w, b) in enumerate(zip(ws, bs, strict=True)):
            ids = np.arange(w.shape[0])
            if active is not None and active[li] is not None:
                ids = np.asarray(active[li][i])
            mask = np.zeros(w.shape[0], bool)
            mask[ids] = True
            z = np.where(mask, w @ acts[-1] + b, 0.0)
            masks.append(mask)
            acts.append(np.maximum(z, 0.0) if li < n_layers - 1 else z)
        if len(labels) == 0:
            continue
        mask = masks[-1]
        z = acts[-1][mask]
        lse = z.max() + np.log(np.exp(z - z.max()).sum())
        t = np.zeros(ws[-1].shape[0])
        t[labels] = 1.0 / len(labels)
        losses.append(lse - t[labels] @ acts[-1][labels])
        delta = np.zeros(ws[-1].shape[0])
        delta[mask] = np.exp(z - lse) - t[mask]
        for li in range(n_layers - 1, -1, -1):
            deltas[li][i] = delta
            gw[li] += np.outer(delta, acts[li])
            gb[li] += delta
            if li == 0:  # a sample whose delta is all zero touches no feature row
                touched[0] |= (x[i] != 0.0) & delta.any()
            else:
                touched[li] |= delta != 0.0
                delta = (ws[li].T @ delta) * (acts[li] > 0.0)
    loss = float(np.mean(losses)) if losses else 0.0
    if with_deltas:
        return loss, gw, gb, touched, deltas
    return loss, gw, gb, touched


class LazyAdam:
    """The engine's lazy Adam in float64 over neuron-major layers, for several steps.

    Optimiser rows are the first layer's input features (columns of ``ws[0]``; its bias is one row
    of its own, stepped when the batch has a labelled sample) and every other layer's neurons (a
    neuron's weights and bias together). A row is stepped only when it received gradient, and
    bias-corrected by its own step count.
    """

    def __init__(self, ws, bs, lr, beta1, beta2, eps):
        self.ws = [w.copy() for w in ws]
        self.bs = [b.copy() for b in bs]
        self.m = [np.zeros_like(w) for w in ws]
        self.v = [np.zeros_like(w) for w in ws]
        self.mb = [np.zeros_like(b) for b in bs]
        self.vb = [np.zeros_like(b) for b in bs]
        self.t = [np.zeros(ws[0].shape[1], np.int64)] + [np.zeros(len(b), np.int64) for b in bs[1:]]
        self.t_bias0 = 0
        self.hyper = (lr, beta1, beta2, eps)

    def _step(self, w, g, m, v, t, rows):
        lr, b1, b2, eps = self.hyper
        m[rows] = b1 * m[rows] + (1 - b1) * g[rows]
        v[rows] = b2 * v[rows] + (1 - b2) * g[rows] ** 2
        corr = np.sqrt(1 - b2 ** t[rows]) / (1 - b1 ** t[rows])
        corr = corr.reshape((-1,) + (1,) * (w.ndim - 1))
        w[rows] -= lr * corr * m[rows] / (np.sqrt(v[rows]) + eps)

    def train_batch(self, data, rows, active=None):
        """One step on ``rows`` with the given active sets; returns the batch loss."""
        loss, gw, gb, touched, deltas = reference_step(self.ws, self.bs, data, rows, active, True)
        for li in range(len(self.ws)):
            rows_l = touched[li]
            self.t[li][rows_l] += 1
            if li == 0:  # feature rows are the columns of the neuron-major first layer
                w, g, m, v = self.ws[0].T, gw[0].T, self.m[0].T, self.v[0].T
                self._step(w, g, m, v, self.t[0], rows_l)
                if deltas[0].any():  # the bias row got gradient
                    self.t_bias0 += 1
                    every = np.ones(len(self.bs[0]), bool)
                    t_b = np.full(len(self.bs[0]), self.t_bias0)
                    self._step(self.bs[0], gb[0], self.mb[0], self.vb[0], t_b, every)
                continue
            self._step(self.ws[li], gw[li], self.m[li], self.v[li], self.t[li], rows_l)
            self._step(self.bs[li], gb[li], self.mb[li], self.vb[li], self.t[li], rows_l)
        return loss


def adam_first_step(w, g, touched_rows, lr, beta1, beta2, eps):
    """Weights after Adam step 1 on the touched rows (others unchanged), float64.

    ``w`` and ``g`` are (R, C) with rows the optimiser rows, or (n,) for a bias whose rows are
    its entries.
    """
    m = (1 - beta1) * g
    v = (1 - beta2) * g * g
    lr_t = lr * np.sqrt(1 - beta2) / (1 - beta1)
    step = lr_t * m / (np.sqrt(v) + eps)
    out = w.copy()
    out[touched_rows] -= step[touched_rows]
    return out
