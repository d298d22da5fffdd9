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
from _engine_reference import toy_data

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
