"""Where a baseline's batch time goes: host preparation, forward, backward, Adam update.

``python -m baselines bench`` runs :func:`profile_batches` on a prepared model. Each batch is run
four ways in turn on the same inputs -- host preparation (``batch_inputs``), the forward loss, the
forward and gradient, and the full training step -- and the phases are taken as differences. All
calls are synchronous (CPU eager execution; ``.numpy()`` on the loss), so each stamp closes its
work. Process CPU time of the step is reported too: on a shared machine it is a better view of
the work than wall time, which grows when other jobs take the cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

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
        ``ms_step`` (what ``train_batch`` costs: host + step), ``ms_step_min``, ``ms_host``,
        ``ms_forward``, ``ms_backward``, ``ms_adam``, ``cpu_ms_step`` (process CPU time of the
        step, all threads), ``host_fraction`` and ``load_avg_1m`` at the end.
    """
    variables = list(model.net.variables.values())

    def gradients(*inputs: tf.Tensor):
        with tf.GradientTape() as tape:
            loss = model.loss_fn(*inputs)
        return loss, tape.gradient(loss, variables)

    forward = tf.function(model.loss_fn, input_signature=model.input_signature)
    backward = tf.function(gradients, input_signature=model.input_signature)
    times: dict[str, list[float]] = {k: [] for k in ("host", "fwd", "grad", "step", "cpu")}
    for i, rows in enumerate(batches):
        t0 = time.perf_counter()
        inputs = model.batch_inputs(rows)
        t1 = time.perf_counter()
        forward(*inputs).numpy()
        t2 = time.perf_counter()
        backward(*inputs)[0].numpy()
        t3 = time.perf_counter()
        c3 = time.process_time()
        model.train_batch(rows)
        t4 = time.perf_counter()
        if i == 0:
            continue
        times["cpu"].append(time.process_time() - c3)
        for key, value in (
            ("host", t1 - t0),
            ("fwd", t2 - t1),
            ("grad", t3 - t2),
            ("step", t4 - t3),
        ):
            times[key].append(value)
    ms = {key: 1000.0 * float(np.median(values)) for key, values in times.items()}
    return {
        "ms_step": ms["step"],
        "ms_step_min": 1000.0 * float(np.min(times["step"])),
        "ms_host": ms["host"],
        "ms_forward": ms["fwd"],
        "ms_backward": ms["grad"] - ms["fwd"],
        "ms_adam": ms["step"] - ms["host"] - ms["grad"],
        "cpu_ms_step": ms["cpu"],
        "host_fraction": ms["host"] / ms["step"],
        "load_avg_1m": os.getloadavg()[0],
    }
