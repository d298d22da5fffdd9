"""Where a baseline's batch time goes: host preparation, forward, backward, Adam update.

``python -m baselines bench`` runs :func:`profile_batches` on a prepared model. Each batch is run
four ways in turn on the same inputs -- host preparation and transfer (``batch_inputs``), the
forward loss, the forward and gradient, and the full training step -- and the phases are taken as
differences. Each stamp is taken after :func:`baselines.timing.finish` (every device idle), so on a
GPU a phase's stamp closes its kernels, not just their launch. Process CPU time of the step is
reported too: on a shared machine it is a better view of the work than wall time, which grows
when other jobs take the cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from baselines.timing import finish
from baselines.trainable import TFSoftmaxTrainable

__all__ = ["profile_batches"]


def profile_batches(model: TFSoftmaxTrainable, batches: Sequence[np.ndarray]) -> dict[str, float]:
    """Median milliseconds per batch of each phase of the training step.

    Parameters
    ----------
    model : TFSoftmaxTrainable
        A prepared model; it is trained on ``batches`` (its state changes).
    batches : sequence of ndarray of int, each shape (B,)
        Training rows of each batch; the first one only warms up (traces, allocates).

    Returns
    -------
    dict of str to float
        Wall medians ``ms_step`` (what ``train_batch`` costs: host + step), ``ms_host``,
        ``ms_forward``, ``ms_backward``, ``ms_adam``; the same as process CPU time over all
        threads (``cpu_ms_*``); ``ms_step_min``; ``host_fraction``; ``load_avg_1m`` at the end.
    """
    variables = list(model.net.variables.values())

    def gradients(*inputs: tf.Tensor):
        with tf.GradientTape() as tape:
            loss = model.loss_fn(*inputs)
        return loss, tape.gradient(loss, variables)

    forward = tf.function(model.loss_fn, input_signature=model.input_signature)
    backward = tf.function(gradients, input_signature=model.input_signature)
    wall: dict[str, list[float]] = {k: [] for k in ("host", "fwd", "grad", "step")}
    cpu: dict[str, list[float]] = {k: [] for k in ("host", "fwd", "grad", "step")}
    for i, rows in enumerate(batches):
        stamps = [(time.perf_counter(), time.process_time())]
        with tf.device(model.tf_device):
            inputs = model.batch_inputs(rows)
            tf.test.experimental.sync_devices()
            stamps.append((time.perf_counter(), time.process_time()))
            finish(forward(*inputs))
            stamps.append((time.perf_counter(), time.process_time()))
            finish(backward(*inputs)[0])
        stamps.append((time.perf_counter(), time.process_time()))
        model.train_batch(rows)
        stamps.append((time.perf_counter(), time.process_time()))
        if i == 0:
            continue
        for key, before, after in zip(wall, stamps[:-1], stamps[1:], strict=True):
            wall[key].append(after[0] - before[0])
            cpu[key].append(after[1] - before[1])
    out = {"ms_step_min": 1000.0 * float(np.min(wall["step"]))}
    for prefix, times in (("ms", wall), ("cpu_ms", cpu)):
        ms = {key: 1000.0 * float(np.median(values)) for key, values in times.items()}
        out[f"{prefix}_step"] = ms["step"]
        out[f"{prefix}_host"] = ms["host"]
        out[f"{prefix}_forward"] = ms["fwd"]
        out[f"{prefix}_backward"] = ms["grad"] - ms["fwd"]
        out[f"{prefix}_adam"] = ms["step"] - ms["host"] - ms["grad"]
    out["host_fraction"] = out["ms_host"] / out["ms_step"]
    out["load_avg_1m"] = os.getloadavg()[0]
    return out
