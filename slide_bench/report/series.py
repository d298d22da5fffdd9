"""Pure transforms from curves and summary rows to the series the figures draw.

Nothing here draws or reads files: every function maps arrays or data frames to arrays or data
frames, so the figures' numbers are unit-tested against hand-computed values. The renderer
(:mod:`slide_bench.report.figures`) only draws what these functions return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "MARKERS",
    "PALETTE",
    "Band",
    "MethodStyle",
    "band_over_runs",
    "headline_runs",
    "method_styles",
    "scaling_table",
    "series_label",
    "speedup",
    "time_to_target",
    "time_to_target_over_seeds",
]

#: Colour-blind-safe palette (Okabe-Ito, then Tableau) and markers, assigned in config order.
PALETTE: tuple[str, ...] = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
    "#8C564B", "#7F7F7F", "#BCBD22",
)
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


@dataclass(frozen=True)
class MethodStyle:
    """How one method is drawn in every figure."""

    color: str
    marker: str


def method_styles(methods: Sequence[str]) -> dict[str, MethodStyle]:
    """One colour and marker per method, fixed by the method's position in the config.

    The same config gives every figure of every dataset the same style for a method; colours
    and markers cycle independently, so pairs stay distinct beyond ten methods.
    """
    return {
        m: MethodStyle(PALETTE[i % len(PALETTE)], MARKERS[(i // len(PALETTE) + i) % len(MARKERS)])
        for i, m in enumerate(methods)
    }


def series_label(method: str, device: str, devices: Sequence[str]) -> str:
    """Legend label: the method, plus its device when the figure holds more than one device."""
    return f"{method} ({device})" if len(set(devices)) > 1 else method


@dataclass(frozen=True)
class Band:
    """Median and quantile band of several runs on a common x grid.

    Attributes
    ----------
    x : ndarray (n,)
        Common grid: every x at which some run was evaluated, within the range all runs cover.
    median, low, high : ndarray (n,)
        Median and the lower/upper quantiles over runs of each run's linear interpolation at x.
    n_runs : int
        Number of runs combined.
    """

    x: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_runs: int


def band_over_runs(
    runs: Sequence[tuple[np.ndarray, np.ndarray]],
    quantiles: tuple[float, float] = (0.25, 0.75),
) -> Band:
    """Combine runs (e.g. seeds) into a median and a quantile band on a common grid.

    Parameters
    ----------
    runs : sequence of (x (k,), y (k,)) pairs
        One curve per run; x need not be shared between runs (wall-clock times never are).
        Each run must have at least one point; points need not be sorted.
    quantiles : (low, high)
        Quantiles of the band, in [0, 1].

    Returns
    -------
    Band
        On the grid of all x values that lie in every run's range ``[max of first x, min of last
        x]``, so the median is always over all runs (no run is extrapolated).
    """
    if not runs:
        raise ValueError("band_over_runs needs at least one run")
    sorted_runs = []
    for x, y in runs:
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        if x.shape != y.shape or x.size == 0:
            raise ValueError("each run needs matching, non-empty x and y")
        order = np.argsort(x, kind="stable")
        sorted_runs.append((x[order], y[order]))
    lo = max(x[0] for x, _ in sorted_runs)
    hi = min(x[-1] for x, _ in sorted_runs)
    grid = np.unique(np.concatenate([x for x, _ in sorted_runs]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    values = np.vstack([np.interp(grid, x, y) for x, y in sorted_runs])
    return Band(
        x=grid,
        median=np.median(values, axis=0),
        low=np.quantile(values, quantiles[0], axis=0),
        high=np.quantile(values, quantiles[1], axis=0),
        n_runs=len(sorted_runs),
    )


def time_to_target(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """The first x (in x order) at which y reached ``target``; NaN if it never did.

    The value is the x of the first evaluation at or above the target, not an interpolation:
    it is a time at which the accuracy was actually measured.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if not np.isfinite(target):
        return float("nan")
    order = np.argsort(x, kind="stable")
    hit = np.flatnonzero(y[order] >= target)
    return float(x[order][hit[0]]) if hit.size else float("nan")


def headline_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Keep, for each (method, device), only the runs at its largest thread count.

    Convergence and time-to-accuracy figures compare methods at their best-provisioned setting;
    the thread-scaling figure shows the other thread counts.
    """
    if runs.empty:
        return runs
    top = runs.groupby(["method", "device"])["threads"].transform("max")
    return runs[runs["threads"] == top]


def scaling_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Seconds per epoch and speed-up against thread count, per method and device.

    Parameters
    ----------
    summary : DataFrame
        Summary rows with columns method, device, threads, seed, seconds_per_epoch (failed runs
        have NaN and are ignored).

    Returns
    -------
    DataFrame
        One row per (method, device, threads) with ``seconds_per_epoch`` (median over seeds),
        ``low``/``high`` (min/max over seeds), ``speedup`` (median seconds per epoch at the
        method's smallest thread count divided by this row's) and ``ideal`` (threads divided by
        that smallest thread count). Sorted by method, device, threads.
    """
    ok = summary[np.isfinite(summary["seconds_per_epoch"].astype(float))]
    cols = ["method", "device", "threads", "seconds_per_epoch", "low", "high", "speedup", "ideal"]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    table = (
        ok.groupby(["method", "device", "threads"])["seconds_per_epoch"]
        .agg(seconds_per_epoch="median", low="min", high="max")
        .reset_index()
        .sort_values(["method", "device", "threads"], kind="stable")
    )
    first = table.groupby(["method", "device"])
    base_time = first["seconds_per_epoch"].transform("first")
    base_threads = first["threads"].transform("first")
    table["speedup"] = base_time / table["seconds_per_epoch"]
    table["ideal"] = table["threads"] / base_threads
    return table[cols].reset_index(drop=True)


def time_to_target_over_seeds(times: Sequence[float] | np.ndarray) -> float:
    """Median time to target over the runs (seeds) of one setting; NaN unless every run reached it.

    A setting that missed the target in any of its runs has no time to target: a median that
    silently skipped the runs that never got there would flatter it.
    """
    t = np.asarray(times, dtype=float)
    if t.size == 0 or not np.isfinite(t).all():
        return float("nan")
    return float(np.median(t))


def speedup(baseline_time: float, method_time: float) -> float:
    """How many times sooner a method reached the target than a baseline: baseline / method.

    NaN when either time is missing (never reached, failed, no such run) or the method's time is
    not positive (a target met before any training step has no meaningful ratio).
    """
    if not (np.isfinite(baseline_time) and np.isfinite(method_time)) or method_time <= 0:
        return float("nan")
    return float(baseline_time) / float(method_time)
