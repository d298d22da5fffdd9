"""Stopping a clock only after the device has finished: the sync point of every timed TF step.

A GPU runs asynchronously: a TensorFlow op (or a whole ``tf.function``) returns once its kernels
are *queued* on the GPU's stream, and reading one result (``float(loss)``) waits only for the
kernels that produced it. The optimiser's update kernels come after the loss on the stream, so a
clock stopped after ``float(loss)`` misses them (and a following, untimed evaluation would absorb
them). :func:`finish` therefore waits for every pending op on every device
(``tf.test.experimental.sync_devices``, TensorFlow's API for benchmarks) before it reads the
value. On the CPU, TensorFlow's eager ops are synchronous unless
``tf.config.experimental.set_synchronous_execution(False)`` makes them asynchronous like a GPU's:
the tests use that mode to check the sync on a machine without a GPU.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["finish"]


def finish(value: tf.Tensor) -> float:
    """Wait until every device has run all the ops queued so far, then read ``value``.

    Call it inside the timed region, right after the step, so that the clock includes the
    device's work (and any host-to-device copies the step waited for).

    Parameters
    ----------
    value : tf.Tensor
        A scalar result of the step (the loss).

    Returns
    -------
    float
        ``value`` on the host.
    """
    tf.test.experimental.sync_devices()
    return float(value)
