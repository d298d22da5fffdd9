"""The TensorFlow baselines' plug-in for the core's method registry (:mod:`slide_bench.methods`).

Builds a full- or sampled-softmax model from its config tree (TensorFlow's thread pools fixed
first) and supplies the bench's TensorFlow columns (host-side batch preparation vs the step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from baselines.config import BaselineConfig
from slide_bench.cli import from_dict, to_dict

__all__ = ["bench_extras", "build", "check_device"]


def build(tree: Mapping[str, Any], seed: int, threads: int,
          device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """A TensorFlow baseline and its config as a dict.

    TensorFlow is imported here, in the process that trains (its thread pools are fixed before
    its first op).
    """
    from baselines.device import configure_threads
    from baselines.trainable import TFSoftmaxTrainable

    configure_threads(threads)
    config = from_dict(BaselineConfig, {"device": device, **tree})
    return TFSoftmaxTrainable(config, seed), to_dict(config)


def check_device(device: str) -> None:
    """Raise :class:`~slide_bench.errors.GPUUnavailableError` (exit 3) when ``device`` is absent."""
    from baselines.device import resolve_device

    resolve_device(device)


def bench_extras(model: Any, stats: Mapping[str, float], n_timed: int, batch_size: int,
                 row: Mapping[str, Any]) -> dict[str, Any]:
    """The bench's TensorFlow columns: host and step time per batch, the GPU's peak memory."""
    del batch_size
    out = {
        "t_host_ms": 1e3 * stats.get("t_host", math.nan) / n_timed,
        "t_step_ms": 1e3 * stats.get("t_step", math.nan) / n_timed,
        "ms_per_batch_amortised": row["ms_per_batch_median"],
    }
    if row.get("device") == "gpu":
        import tensorflow as tf

        # what TensorFlow's allocator held at most on the GPU (weights, Adam slots, activations)
        out["gpu_peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return out
