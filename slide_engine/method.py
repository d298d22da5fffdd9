"""The SLIDE engine's plug-in for the core's method registry (:mod:`slide_bench.methods`).

Builds the network of a SLIDE method from its config tree and supplies the bench's SLIDE columns
(phase profile, active sets, one timed table rebuild, estimated memory traffic).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from slide_bench.cli import from_dict, to_dict
from slide_engine.engine import SlideConfig, SlideNetwork

__all__ = ["bench_extras", "build", "check_device", "use_cpu_phase_clock"]

_PHASES = ("hash", "forward", "backward", "update", "tables")


def build(tree: Mapping[str, Any], seed: int, threads: int,
          device: str = "cpu") -> tuple[SlideNetwork, dict[str, Any]]:
    """The network of a SLIDE method (on the CPU's threads) and its config as a dict."""
    del device  # SLIDE runs on the CPU only (the registry lists no other device)
    config = from_dict(SlideConfig, dict(tree))
    return SlideNetwork(config, seed=seed, threads=threads), to_dict(config)


def check_device(device: str) -> None:
    """SLIDE needs nothing beyond the CPU."""
    del device


class _CPUClock:
    """Stand-in for the ``time`` module whose ``perf_counter`` is the process CPU clock."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def perf_counter() -> float:
        return time.process_time()


def use_cpu_phase_clock() -> None:
    """Time the engine's phases with the process CPU clock instead of the wall clock.

    The phase timers read ``time.perf_counter`` in the training step's module: they get the
    process CPU clock instead (a steadier split on a shared machine; at >1 thread it sums the
    threads' CPU, spin-waits included). Callers' own clocks are untouched.
    """
    from slide_engine.engine import step

    step.time = _CPUClock()  # type: ignore[assignment]


def bench_extras(model: SlideNetwork, stats: Mapping[str, float], n_timed: int, batch_size: int,
                 row: Mapping[str, Any]) -> dict[str, Any]:
    """SLIDE's bench columns after the timed batches.

    Parameters
    ----------
    model : SlideNetwork
        The network after its timed batches.
    stats : mapping
        ``model.stats()`` of the timed batches.
    n_timed : int
        Timed batches.
    batch_size : int
    row : mapping
        The bench row so far (``ms_per_batch_median``).

    Returns
    -------
    dict
        Phase times per batch, active-set sizes, model bytes, one timed rebuild and its
        amortised cost, the estimated output-layer traffic.
    """
    out = _profile(model, stats, n_timed)
    neuron_major = len(model.layers) - 1 in model._rowwise
    out.update(traffic_gb({**out, **row}, batch_size, model.layers[-1].w.shape[1],
                          neuron_major))
    if "rebuild_seconds" in out:
        # the schedule counts samples: a rebuild every this many batches of this size
        out["rebuild_every"] = out.pop("rebuild_every_samples") / batch_size
        out["ms_per_batch_amortised"] = (
            row["ms_per_batch_median"] + 1e3 * out["rebuild_seconds"] / out["rebuild_every"]
        )
    return out


def _profile(model: SlideNetwork, stats: Mapping[str, float], n_timed: int) -> dict[str, float]:
    out: dict[str, float] = {"active_mean": stats.get("active_mean", math.nan)}
    for phase in _PHASES:
        out[f"t_{phase}_ms"] = 1e3 * stats.get(f"t_{phase}", math.nan) / n_timed
    # distinct output neurons of the last timed batch (the rows Adam updates): with LSH many
    # samples share buckets, so this is much smaller than batch * active
    buffers = getattr(model, "_buffers", None)
    if buffers is not None:
        ids, cnt = buffers.ids[-1], buffers.cnt[-1]
        taken = np.concatenate([ids[i, : cnt[i]] for i in range(cnt.shape[0])])
        out["unique_active"] = float(np.unique(taken).size)
    nbytes = sum(layer.nbytes() for layer in model.layers)
    samplers = getattr(model, "_samplers", {})
    nbytes += sum(s.index.nbytes for s in samplers.values())
    out["model_bytes_mb"] = nbytes / 2**20
    # one scheduled rebuild of every sampled layer's tables, timed alone (the periodic cost;
    # with lazy Adam it re-hashes the neurons moved since the start-up build)
    if samplers:
        c0, t0 = time.process_time(), time.perf_counter()
        for index, sampler in samplers.items():
            sampler.rebuild(model._neuron_rows(index), model._rebuild_counts(index))
        out["rebuild_seconds"] = time.perf_counter() - t0
        out["rebuild_cpu_seconds"] = time.process_time() - c0
        out["rebuild_every_samples"] = min(
            s.cfg.rebuild_every_samples for s in samplers.values()
        )
    return out


def traffic_gb(row: Mapping[str, Any], batch: int, width: int,
               neuron_major: bool) -> dict[str, float]:
    """Estimated memory traffic of one SLIDE batch in the output layer (the dominant term), GB.

    ``traffic_pairs_gb`` counts every (sample, active neuron) pair as a cache miss, rows of
    ``4 * width`` bytes: the upper bound. Per pair, the sample-major (HOGWILD) path reads the
    weight row in the forward (1), reads it and reads + writes the gradient row in the backward
    (3) and lazy Adam reads and writes w, g, m, v (8): 12 rows; the neuron-major path works per
    distinct row, so its upper bound is the same as its floor. ``traffic_unique_gb`` counts each
    distinct row of the batch once per array and direction: sample-major, w, g, m, v read and
    written (8 rows); neuron-major, w read by the forward, then w, m, v read and written by the
    fused pass (7 rows, no gradient array): the floor when shared rows stay in cache.
    """
    row_bytes = 4 * width
    out = {}
    if "unique_active" in row:
        per_row = 7 if neuron_major else 8
        out["traffic_unique_gb"] = row["unique_active"] * row_bytes * per_row / 1e9
    out["traffic_pairs_gb"] = (out["traffic_unique_gb"] if neuron_major and out
                               else batch * row["active_mean"] * row_bytes * 12 / 1e9)
    return out
