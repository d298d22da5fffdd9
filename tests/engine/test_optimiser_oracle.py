"""The comparison's backbone: SLIDE with every output neuron active is TF full softmax.

From the same initial weights and the same batches, the engine (sampled output layer whose
active set is every label) and the TensorFlow full-softmax baseline must report the same loss
and end with the same weights, in both Adam modes of the shared optimiser rule. Three steps on
different batches, so that dense Adam's momentum on rows without gradient (and lazy Adam's
per-row step counts) are exercised, not only the first step where both modes coincide.
Tolerance: float32 rounding (relative Frobenius error <= 2e-5 on the loss and every weight,
<= 1e-4 on every weight's total change).
"""

from __future__ import annotations

import numpy as np
import pytest
from _engine_reference import LazyAdam, toy_data

from baselines.config import BaselineConfig
from baselines.trainable import TFSoftmaxTrainable
from slide_engine.engine import HashConfig, LayerConfig, OutputConfig, SlideConfig, SlideNetwork

RTOL = 2e-5
STEP_RTOL = 1e-4  # of the summed updates (float32 weights near 0.3, steps near 1e-2)
LR, HIDDEN, N_LABELS = 1e-2, 8, 15


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


BATCHES = [np.array([0, 5, 3, 17, 9, 11, 2, 20]), np.array([1, 4, 6, 8, 30, 31, 12, 13]),
           np.array([7, 10, 14, 15, 16, 18, 19, 21])]


@pytest.mark.parametrize("policy", ["random", "exact-topk"])
@pytest.mark.parametrize("adam", ["lazy", "dense"])
def test_all_active_slide_equals_tf_full_softmax(adam, policy):
    data = toy_data(n=32, n_labels=N_LABELS, unlabelled_first=False)
    every = HashConfig(policy=policy, min_active=N_LABELS, k=2, l=4, n_buckets=16)
    cfg = SlideConfig(hidden=[LayerConfig(units=HIDDEN)], output=OutputConfig(hash=every),
                      lr=LR, init_std=0.3, adam=adam)
    slide = SlideNetwork(cfg, seed=3, threads=1)
    slide.prepare(data)
    tf_model = TFSoftmaxTrainable(
        BaselineConfig(model="full", hidden=HIDDEN, lr=LR, init_std=0.3, adam=adam), seed=5
    )
    tf_model.prepare(data)
    first, out = slide.layers
    # the engine stores the first layer input-major (D, H) and the output neuron-major (L, H),
    # the layouts of the baseline's w1 and w2
    start = {"w1": first.w.copy(), "b1": first.b.copy(), "w2": out.w.copy(), "b2": out.b.copy()}
    for name, var in tf_model.net.variables.items():
        assert tuple(var.shape) == start[name].shape
        var.assign(start[name])
    for rows in BATCHES:
        loss_slide = slide.train_batch(rows)
        loss_tf = tf_model.train_batch(rows)
        assert slide.stats()["active_mean"] == N_LABELS  # every output neuron was computed
        assert rel(loss_slide, loss_tf) <= RTOL
    got = {"w1": first.w, "b1": first.b, "w2": out.w, "b2": out.b}
    for name, var in tf_model.net.variables.items():
        want = var.numpy()
        assert rel(got[name], want) <= RTOL, f"{name} after {len(BATCHES)} steps"
        # the updates themselves agree (not only weights dominated by their initial values)
        assert np.abs(want - start[name]).max() > 1e-3, f"{name} did not move"
        assert rel(got[name] - start[name], want - start[name]) <= STEP_RTOL, f"{name} update"


class _MeanLossAdam(LazyAdam):
    """The NumPy lazy Adam stepping on the mean loss: every gradient divided by the batch's
    labelled points (``reference_step`` returns the summed gradient)."""

    n_labelled = 1

    def _step(self, w, g, m, v, t, rows):
        super()._step(w, g / self.n_labelled, m, v, t, rows)


def test_summed_loss_with_eps_times_labelled_points_takes_the_mean_loss_steps():
    # Adam sees the gradient's scale only through eps: the summed loss (both engines) with
    # eps * n steps exactly as the mean loss over the n labelled points with eps. eps is large
    # here (1e-2 against mean gradients of ~1e-2) so that getting it wrong is visible.
    eps_mean = 1e-2
    data = toy_data(n=32, n_labels=N_LABELS, unlabelled_first=False)
    every = HashConfig(policy="exact-topk", min_active=N_LABELS, k=2, l=4, n_buckets=16)
    n = len(BATCHES[0])  # every point is labelled

    def slide_net(eps):
        cfg = SlideConfig(hidden=[LayerConfig(units=HIDDEN)], output=OutputConfig(hash=every),
                          lr=LR, init_std=0.3, adam="lazy", eps=eps)
        net = SlideNetwork(cfg, seed=3, threads=1)
        net.prepare(data)
        return net

    def tf_model(eps, start):
        model = TFSoftmaxTrainable(BaselineConfig(model="full", hidden=HIDDEN, lr=LR,
                                                  init_std=0.3, adam="lazy", eps=eps), seed=5)
        model.prepare(data)
        for name, var in model.net.variables.items():
            var.assign(start[name])
        return model

    slide = slide_net(eps_mean * n)
    first, out = slide.layers
    start = {"w1": first.w.copy(), "b1": first.b.copy(), "w2": out.w.copy(), "b2": out.b.copy()}
    oracle = _MeanLossAdam([first.w.T.astype(np.float64), out.w.astype(np.float64)],
                           [first.b.astype(np.float64), out.b.astype(np.float64)],
                           LR, 0.9, 0.999, eps_mean)
    scaled, unscaled = tf_model(eps_mean * n, start), tf_model(eps_mean, start)
    for rows in BATCHES:
        oracle.n_labelled = sum(len(data.y_indices[data.y_indptr[r]:data.y_indptr[r + 1]]) > 0
                                for r in rows)
        assert oracle.n_labelled == n
        oracle.train_batch(data, rows)
        for model in (slide, scaled, unscaled):
            model.train_batch(rows)
    want = {"w1": oracle.ws[0].T, "b1": oracle.bs[0], "w2": oracle.ws[1], "b2": oracle.bs[1]}
    got_slide = {"w1": first.w, "b1": first.b, "w2": out.w, "b2": out.b}
    moved = {}
    for name, var in scaled.net.variables.items():
        change = want[name] - start[name]
        assert np.abs(change).max() > 1e-3, f"{name} did not move"
        assert rel(got_slide[name] - start[name], change) <= STEP_RTOL, f"engine {name} update"
        assert rel(var.numpy() - start[name], change) <= STEP_RTOL, f"TF {name} update"
        moved[name] = rel(unscaled.net.variables[name].numpy() - start[name], change)
    # the unscaled eps is the summed loss's own step, measurably not the mean loss's
    assert max(moved.values()) > 100 * STEP_RTOL, moved
