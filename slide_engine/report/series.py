"""Pure transforms from curves and summary rows to the series the figures draw.

Nothing here draws or reads files: every function maps arrays or data frames to arrays or data
frames, so the figures' numbers are unit-tested against hand-computed values. The renderer
(:mod:`slide_engine.report.figures`) only draws what these functions return.
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
    "ratio_lines",
    "scaling_table",
    "series_label",
    "speedup",
    "time_to_target",
    "time_to_target_over_seeds",
    "time_to_target_ratios",
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


def time_to_target_ratios(summary: pd.DataFrame, baselines: Sequence[str]) -> pd.DataFrame:
    """Time to target per method and device at its largest thread count, and its speed-ups.

    Parameters
    ----------
    summary : DataFrame
        Summary rows of one dataset (columns method, device, threads, seed, status,
        time_to_target_s, best_p_at_1; train_seconds optional).
    baselines : sequence of str
        Methods to compare every method with (e.g. the full softmax and the sampled softmax).

    Returns
    -------
    DataFrame
        One row per (method, device), in order of first appearance, at the method's largest
        thread count (:func:`headline_runs`): ``threads``, ``n_runs``, ``n_reached`` (runs that
        reached the target), ``failed`` (every run failed), ``best_p_at_1`` (maximum over runs),
        ``train_seconds`` (the shortest run's training seconds, NaN when unknown),
        ``time_to_target_s`` (:func:`time_to_target_over_seeds`); per baseline ``b``, a column
        ``b`` holding :func:`speedup` of ``b``'s time on the same device over this row's (NaN
        when ``b`` has no run on that device or no time), and a column ``b + " >"``: when no run
        of ``b`` reached the target but this row did, the lower bound of that speed-up, ``b``'s
        training seconds (it trained that long without getting there) over this row's time.
    """
    bounds = [f"{b} >" for b in baselines]
    cols = ["method", "device", "threads", "n_runs", "n_reached", "failed", "best_p_at_1",
            "train_seconds", "time_to_target_s", *baselines, *bounds]
    runs = headline_runs(summary)
    if runs.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (method, device), group in runs.groupby(["method", "device"], sort=False):
        times = group["time_to_target_s"].astype(float)
        trained = group["train_seconds"].astype(float) if "train_seconds" in group else times * 0
        rows.append(
            dict(method=method, device=device, threads=int(group["threads"].iloc[0]),
                 n_runs=len(group), n_reached=int(np.isfinite(times).sum()),
                 failed=bool((group["status"] == "failed").all()),
                 best_p_at_1=float(group["best_p_at_1"].astype(float).max()),
                 train_seconds=float(trained.min()) if trained.notna().any() else np.nan,
                 time_to_target_s=time_to_target_over_seeds(times))
        )
    table = pd.DataFrame(rows)
    for base, bound in zip(baselines, bounds, strict=True):
        by_device = table[table["method"] == base].set_index("device")
        ratio, lower = [], []
        for device, t in zip(table["device"], table["time_to_target_s"], strict=True):
            if device not in by_device.index:
                ratio.append(np.nan)
                lower.append(np.nan)
                continue
            b = by_device.loc[device]
            ratio.append(speedup(float(b["time_to_target_s"]), t))
            never = b["n_reached"] == 0 and not b["failed"]
            lower.append(speedup(float(b["train_seconds"]), t) if never else np.nan)
        table[base] = ratio
        table[bound] = lower
    return table[cols].reset_index(drop=True)


def _seconds(value: float) -> str:
    """Seconds with three significant digits (12.3 s, 456 s, 1.23e+03 s written as 1230 s)."""
    return f"{value:.3g} s" if value < 1000 else f"{value:.0f} s"


def _times(value: float) -> str:
    """A speed-up: two significant digits below 10 (3.1x, 0.54x), whole numbers above (16x)."""
    return f"{value:.2g}x" if value < 10 else f"{value:.0f}x"


def ratio_lines(
    ratios: pd.DataFrame, baselines: Sequence[str], devices: Sequence[str] = ()
) -> list[str]:
    """The annotation of the convergence-time figure, one line per row of
    :func:`time_to_target_ratios`.

    A method that reached the target reads ``"slide: 25.3 s | tf-full/slide 16x |
    tf-sampled-10pct/slide 3.1x"`` (no ratio with itself; ``> 12x (not reached in 480 s)`` when
    the baseline never reached the target in its whole run: a lower bound; ``n/a`` when there is
    no ratio); one that did not reads ``"slide: not reached (best P@1 0.081)"``, or ``"not reached
    by 1 of 2 seeds"``; a failed one ``"slide: failed"``. With more than one device the method
    is written with its device, as in the legend.
    """
    trained = {(r["method"], r["device"]): r.get("train_seconds", np.nan)
               for r in ratios.to_dict("records")}
    lines = []
    for row in ratios.to_dict("records"):
        name = series_label(row["method"], row["device"], devices)
        if row["failed"]:
            lines.append(f"{name}: failed")
            continue
        if not np.isfinite(row["time_to_target_s"]):
            missed = row["n_runs"] - row["n_reached"]
            by = f" by {missed} of {row['n_runs']} seeds" if row["n_reached"] else ""
            lines.append(f"{name}: not reached{by} (best P@1 {row['best_p_at_1']:.3f})")
            continue
        parts = [f"{name}: {_seconds(row['time_to_target_s'])}"]
        for base in baselines:
            if base == row["method"]:
                continue
            value, lower = row[base], row.get(f"{base} >", np.nan)
            if np.isfinite(value):
                shown = _times(value)
            elif np.isfinite(lower):  # the baseline never got there in its whole budget
                budget = float(trained.get((base, row["device"]), np.nan))
                shown = f"> {_times(lower)} (not reached in {_seconds(budget)})"
            else:
                shown = "n/a"
            parts.append(f"{base}/{row['method']} {shown}")
        lines.append(" | ".join(parts))
    return lines
