"""Thin matplotlib renderer of the pipeline's five figures per dataset.

Every number drawn comes from :mod:`slide_bench.report.series`; this module only lays it out.
It uses matplotlib's object-oriented API (``Figure``, no ``pyplot``), so it needs no display and
changes no global backend state.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from slide_bench.report.series import (
    MethodStyle,
    band_over_runs,
    headline_runs,
    scaling_table,
    series_label,
)

__all__ = [
    "convergence_figure",
    "crossover_figure",
    "optimizer_note",
    "sampling_figure",
    "save_figure",
    "thread_scaling_figure",
    "time_to_accuracy_figure",
]

X_LABELS = {
    "train_seconds": "training time (s, evaluation excluded)",
    "iteration": "iterations (optimiser steps)",
}


def _failed_entries(ax: Axes, summary: pd.DataFrame, styles: Mapping[str, MethodStyle]) -> None:
    """Add a legend entry, with the reason, for each method and device whose runs all failed."""
    for (method, device), rows in _in_config_order(summary, styles):
        if not (rows["status"] == "failed").all():
            continue
        reason = _shorten(str(rows["reason"].iloc[0]), 48)
        style = styles[method]
        ax.plot([], [], color=style.color, marker=style.marker, linestyle="none", alpha=0.5,
                label=f"{method} ({device}): not run, {reason}")


def _shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 3] + "..."


def _in_config_order(
    frame: pd.DataFrame, styles: Mapping[str, MethodStyle]
) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """Groups of ``frame`` by (method, device), methods in config order, CPU before GPU."""
    order = {method: i for i, method in enumerate(styles)}
    groups = list(frame.groupby(["method", "device"], sort=False))
    return sorted(groups, key=lambda item: (order[item[0][0]], item[0][1]))


def _plain(value: float, _pos: int) -> str:
    """Tick label without scientific notation."""
    return f"{value:g}"


def _plain_125(value: float, _pos: int) -> str:
    """Minor log tick label only at 2x and 5x a power of ten (keeps log axes uncluttered)."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
    return f"{value:g}" if mantissa in (2.0, 5.0) else ""


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def optimizer_note(summary: pd.DataFrame) -> str:
    """The Adam mode(s) of the runs, for figure titles: ``"lazy Adam, every method"`` or, when
    the methods differ, each mode with its methods."""
    if "adam" not in summary or summary["adam"].dropna().astype(str).eq("").all():
        return "optimiser not recorded"
    modes = summary.dropna(subset=["adam"]).groupby("adam", sort=True)["method"].unique()
    if len(modes) == 1:
        return f"{modes.index[0]} Adam, every method"
    return "; ".join(f"{mode} Adam: {', '.join(methods)}" for mode, methods in modes.items())


def convergence_figure(
    curves: pd.DataFrame,
    summary: pd.DataFrame,
    styles: Mapping[str, MethodStyle],
    dataset: str,
    x: str,
    verdicts: Sequence[str] = (),
) -> Figure:
    """P@1 on the test subset against training time or iterations, one band per method.

    Parameters
    ----------
    curves : DataFrame
        Tidy curve rows of this dataset (columns of the curve schema, run keys from the grid).
    summary : DataFrame
        Summary rows of this dataset (failed-run note, headline level, time to it, Adam mode).
    styles : mapping
        Method -> colour and marker.
    dataset : str
        Title.
    x : {"train_seconds", "iteration"}
        The x axis.
    verdicts : sequence of str
        Against training time: the headline's verdict of every peer
        (:func:`~slide_bench.report.headline.headline`), printed in a box under the axes; a
        dotted vertical line marks each method's time to the headline level.
    """
    subset = headline_runs(curves[curves["eval_set"] == "subset"])
    target = summary["target_p_at_1"].dropna() if "target_p_at_1" in summary else pd.Series()
    boxed = x == "train_seconds" and bool(verdicts)
    if boxed:
        lines = ["headline (peer's time to the level / SLIDE's; > 1: SLIDE sooner):"]
        lines += [wrapped for line in verdicts
                  for wrapped in textwrap.wrap("- " + line, 110, subsequent_indent="    ")]
        fig = Figure(figsize=(8.5, 4.8 + 0.16 * len(lines) + 0.1), layout="constrained")
        ax, box = fig.subplots(2, 1, height_ratios=[4.8, 0.16 * len(lines) + 0.1])
        box.axis("off")
        text = box.text(0.0, 1.0, "\n".join(lines), transform=box.transAxes, va="top",
                        ha="left", fontsize=7, family="monospace")
        text.set_in_layout(False)  # the axes keep their width; the box is sized by its lines
    else:
        fig = Figure(figsize=(7.5, 4.8), layout="constrained")
        ax = fig.add_subplot()
    devices = list(subset["device"].unique())
    for (method, device), runs in _in_config_order(subset, styles):
        pairs = [(g[x].to_numpy(), g["p_at_1"].to_numpy()) for _, g in runs.groupby("seed")]
        band = band_over_runs(pairs)
        style = styles[method]
        threads = int(runs["threads"].iloc[0])
        label = f"{series_label(method, device, devices)}, {threads} thr"
        if band.n_runs > 1:
            label += f", median of {band.n_runs} seeds"
        linestyle = "--" if device == "gpu" else "-"
        ax.plot(band.x, band.median, color=style.color, marker=style.marker, linestyle=linestyle,
                markevery=max(1, len(band.x) // 12), markersize=5, label=label)
        if band.n_runs > 1:
            ax.fill_between(band.x, band.low, band.high, color=style.color, alpha=0.18, lw=0)
    if not target.empty:
        ax.axhline(target.iloc[0], color="0.35", linestyle="--", linewidth=1,
                   label=f"headline level = {target.iloc[0]:.3f}")
    if x == "train_seconds" and not target.empty:
        for (method, _device), rows in _in_config_order(headline_runs(summary), styles):
            t = rows["time_to_target_s"].astype(float)
            if len(t) and np.isfinite(t).all():
                ax.axvline(float(np.median(t)), color=styles[method].color, linestyle=":",
                           linewidth=1.2)
    _failed_entries(ax, summary, styles)
    if subset.empty:
        _empty(ax, "no successful runs")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel("P@1 on the test subset")
    what = "training time" if x == "train_seconds" else "iterations"
    ax.set_title(f"{dataset}: P@1 against {what} ({optimizer_note(summary)})\n"
                 "band: interquartile range over seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    return fig


#: the panels of the sampling figure: the curve columns drawn in each (solid, dashed, dotted)
#: and the panel's title
SAMPLING_PANELS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("query_cos",), "hash queries: mean pairwise cosine\nwithin a batch (1 = all alike)"),
    (("active_mean",), "active output neurons per sample"),
    (("distinct_rows",), "distinct output neurons per batch"),
    (("recall_top10", "recall_top1"),
     "hardest negatives in the active set: top-10 (solid),\ntop-1 (dashed); uniform A/L dotted"),
    (("share_tables", "share_topup", "share_labels"),
     "active set from: tables (solid),\nrandom top-up (dashed), labels (dotted)"),
    (("table_coverage",), "output neurons stored in\nat least one table"),
)
_PANEL_STYLES = ("-", "--", ":")
#: the recall a uniform random active set of A of the L output neurons would have (about A / L)
UNIFORM_RECALL = "active_fraction"


def sampling_figure(
    curves: pd.DataFrame, styles: Mapping[str, MethodStyle], dataset: str
) -> Figure:
    """What the output layer's hashing selected, against iterations, one line per SLIDE run.

    Six panels from the engine's curve columns: ``query_cos``, the mean pairwise cosine of the
    hash queries (the last hidden layer's activations) within a batch; ``active_mean``, active
    output neurons per sample; ``distinct_rows``, distinct output neurons per batch (these three
    are means over the batches since the previous evaluation); ``recall_top10`` and
    ``recall_top1``, the share of each evaluation point's hardest negatives (its top non-label
    neurons by exact logit) in the active set the engine would pick for it, drawn against
    ``active_fraction`` (A / L: what uniform sampling of the same size would find);
    ``share_tables``, ``share_topup``, ``share_labels``, where the active entries came from;
    ``table_coverage``, the share of output neurons stored in at least one table. A batch whose
    queries are all alike probes the same buckets for every sample: its samples share one
    active set, few distinct rows, and the labels outside those capped buckets get no negative
    gradient. Methods without these columns (the TensorFlow baselines) are not drawn.

    Parameters
    ----------
    curves : DataFrame
        Tidy curve rows of this dataset.
    styles : mapping
        Method -> colour and marker.
    dataset : str
        Title.
    """
    fig = Figure(figsize=(11.0, 7.2), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    rows = curves[(curves["eval_set"] == "subset") & (curves["iteration"] > 0)]
    rows = headline_runs(rows[rows["query_cos"].notna()]) if "query_cos" in rows else rows[:0]
    devices = list(rows["device"].unique())
    for (method, device), runs in _in_config_order(rows, styles):
        style = styles[method]
        for seed, run in runs.groupby("seed"):
            label = (f"{series_label(method, device, devices)}, "
                     f"{int(run['threads'].iloc[0])} thr, seed {seed}")
            for ax, (columns, _) in zip(axes, SAMPLING_PANELS, strict=True):
                for column, linestyle in zip(columns, _PANEL_STYLES, strict=False):
                    if column in run and run[column].notna().any():
                        ax.plot(run["iteration"], run[column], color=style.color,
                                marker=style.marker, markersize=4, linestyle=linestyle,
                                label=label if column == columns[0] else None)
                if columns[0] == "recall_top10" and UNIFORM_RECALL in run:
                    ax.plot(run["iteration"], run[UNIFORM_RECALL], color=style.color,
                            linestyle=":", alpha=0.7)
    for ax, (_, title) in zip(axes, SAMPLING_PANELS, strict=True):
        ax.set_xlabel(X_LABELS["iteration"])
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if rows.empty:
            _empty(ax, "no sampled run")
    axes[0].set_ylim(top=1.02)
    for ax in axes[3:]:
        ax.set_ylim(-0.02, 1.02)
    if not rows.empty:
        axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{dataset}: what the output layer's hashing selected (SLIDE runs)",
                 fontsize=10)
    return fig


def thread_scaling_figure(
    summary: pd.DataFrame, styles: Mapping[str, MethodStyle], dataset: str
) -> Figure:
    """Seconds per epoch (left) and speed-up over the smallest thread count (right)."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    table = scaling_table(summary)
    devices = list(table["device"].unique())
    for (method, device), rows in _in_config_order(table, styles):
        style = styles[method]
        label = series_label(method, device, devices)
        linestyle = "--" if device == "gpu" else "-"
        err = np.vstack([rows["seconds_per_epoch"] - rows["low"],
                         rows["high"] - rows["seconds_per_epoch"]])
        left.errorbar(rows["threads"], rows["seconds_per_epoch"], yerr=err, color=style.color,
                      marker=style.marker, linestyle=linestyle, capsize=3, label=label)
        right.plot(rows["threads"], rows["speedup"], color=style.color, marker=style.marker,
                   linestyle=linestyle, label=label)
    _failed_entries(right, summary, styles)
    if table.empty:
        _empty(left, "no successful runs")
    else:
        threads = np.unique(table["threads"])
        right.plot(threads, threads / threads.min(), color="0.3", linestyle=":", label="ideal")
        for ax in (left, right):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(threads, [str(t) for t in threads])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(FuncFormatter(_plain))
            ax.yaxis.set_minor_formatter(FuncFormatter(_plain_125))
    fig.legend(*right.get_legend_handles_labels(), loc="outside lower center", ncols=4,
               fontsize=8, frameon=False)
    left.set_xlabel("threads")
    left.set_ylabel("seconds per epoch (median, bars: min-max over seeds)")
    right.set_xlabel("threads")
    right.set_ylabel("speed-up over the smallest thread count (x)")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{dataset}: thread scaling of training time ({optimizer_note(summary)})",
                 fontsize=10)
    return fig


def time_to_accuracy_figure(
    levels: pd.DataFrame, summary: pd.DataFrame, styles: Mapping[str, MethodStyle], dataset: str
) -> Figure:
    """Training seconds to each accuracy level, one line per method (time against level).

    Parameters
    ----------
    levels : DataFrame
        :func:`~slide_bench.report.headline.level_table` rows of this dataset.
    summary : DataFrame
        Summary rows of this dataset (failed runs, Adam mode).
    styles : mapping
        Method -> colour and marker.
    dataset : str
        Title.

    Each point is the median over seeds (bars: min-max over the seeds that got there); a level
    that some seed never reached is drawn as an open marker at the top of the axes with the
    number of seeds that reached it, so a method that wins early and stalls is visible as a line
    that stops.
    """
    fig = Figure(figsize=(8.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    devices = list(levels["device"].unique())
    top = float(levels["train_seconds"].max()) if not levels.empty else 1.0
    for (method, device), rows in _in_config_order(levels, styles):
        rows = rows.sort_values("level")
        style = styles[method]
        label = (f"{series_label(method, device, devices)}, {int(rows['threads'].iloc[0])} thr "
                 f"(best P@1 {rows['best_p1'].iloc[0]:.3f})")
        done = rows[np.isfinite(rows["time_median_s"].astype(float))]
        linestyle = "--" if device == "gpu" else "-"
        if not done.empty:
            err = np.vstack([done["time_median_s"] - done["time_min_s"],
                             done["time_max_s"] - done["time_median_s"]])
            ax.errorbar(done["level_p1"], done["time_median_s"], yerr=err, color=style.color,
                        marker=style.marker, linestyle=linestyle, capsize=3, label=label)
            label = None
        missed = rows[~np.isfinite(rows["time_median_s"].astype(float))]
        if not missed.empty:
            ax.plot(missed["level_p1"], np.full(len(missed), top * 1.05), linestyle="none",
                    marker=style.marker, markerfacecolor="none", color=style.color,
                    label=label if label else None)
            for _, r in missed.iterrows():
                ax.annotate(f"{int(r['n_reached'])}/{int(r['n_runs'])}",
                            (r["level_p1"], top * 1.05), textcoords="offset points",
                            xytext=(4, -3), fontsize=7, color=style.color)
    _failed_entries(ax, summary, styles)
    if levels.empty:
        _empty(ax, "no successful runs")
    else:
        ax.axhline(top * 1.05, color="0.6", linewidth=0.8, linestyle=":")
        ticks = levels.drop_duplicates("level").sort_values("level")
        ax.set_xticks(ticks["level_p1"],
                      [f"{p:.3f}\n({lv:.0%})" for p, lv in zip(ticks["level_p1"], ticks["level"],
                                                                strict=True)], fontsize=8)
        ax.set_ylim(0, top * 1.12)
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel("P@1 level (fraction of the best P@1 any method reached on this dataset)")
    ax.set_ylabel("training seconds to reach it (median, bars: min-max over seeds)")
    ax.set_title(f"{dataset}: time to each accuracy level ({optimizer_note(summary)})\n"
                 "open markers at the top: not reached by every seed (reached/seeds)", fontsize=9)
    ax.grid(alpha=0.3)
    return fig


def crossover_figure(
    bands: pd.DataFrame, styles: Mapping[str, MethodStyle], reference: str, level: float,
    note: str = "",
) -> Figure:
    """The crossover sweep: time-to-target ratio against each peer, and every method's step time.

    Parameters
    ----------
    bands : DataFrame
        :func:`~slide_bench.report.crossover.crossover_bands` rows.
    styles : mapping
        Method -> colour and marker.
    reference : str
        The headline method (SLIDE), for the labels.
    level : float
        The headline level (fraction of each dataset's best P@1), for the title.
    note : str
        Appended to the title (e.g. the optimiser).

    Left: the peer's time to the level over the reference's, median over seeds (band: min-max);
    above the line at 1 the reference got there sooner. A median of ``inf`` (only the reference
    reached the level) is drawn as an up-triangle at the top edge, 0 (only the peer did) as a
    down-triangle at the bottom edge. Right: training seconds per optimiser step (median, band:
    min-max over seeds). Both axes logarithmic.
    """
    fig = Figure(figsize=(12.0, 5.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    ratios = bands[bands["quantity"] == "tta_ratio"]
    finite = ratios[["median", "low", "high"]].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    lo_edge = min(0.1, float(finite.min()) / 1.5) if finite.size else 0.1
    hi_edge = max(10.0, float(finite.max()) * 1.5) if finite.size else 10.0
    for k, (method, rows) in enumerate(ratios.groupby("method", sort=False)):
        style = styles[method]
        rows = rows.sort_values("n_labels")
        x = rows["n_labels"].to_numpy(dtype=float)
        med = rows["median"].to_numpy(dtype=float)
        low = rows["low"].to_numpy(dtype=float)
        high = rows["high"].to_numpy(dtype=float)
        drawn = np.isfinite(med) & (med > 0)  # 0 and inf are drawn as triangles at the edges
        left.plot(x[drawn], med[drawn], color=style.color, marker=style.marker, label=method)
        ok = np.isfinite(low) & np.isfinite(high) & (low > 0)
        left.fill_between(x, np.where(ok, low, np.nan), np.where(ok, high, np.nan),
                          color=style.color, alpha=0.15, lw=0)
        x = x * 1.06**k  # peers' triangles side by side
        for xi, m in zip(x, med, strict=True):
            if m == np.inf:
                left.plot([xi], [hi_edge], marker="^", color=style.color, markersize=9)
            elif m == 0:
                left.plot([xi], [lo_edge], marker="v", color=style.color, markersize=9)
    left.axhline(1.0, color="0.2", linewidth=1)
    left.set_ylim(lo_edge / 1.1, hi_edge * 1.1)
    left.set_ylabel(f"peer's time to the level / {reference}'s\n"
                    f"(> 1: {reference} sooner; triangles: only one reached it)")
    left.set_title(f"time to {level:.0%} of each label count's best P@1", fontsize=9)
    steps = bands[bands["quantity"] == "step_seconds"]
    for method, rows in steps.groupby("method", sort=False):
        style = styles[method]
        rows = rows.sort_values("n_labels")
        x = rows["n_labels"].to_numpy(dtype=float)
        right.plot(x, rows["median"], color=style.color, marker=style.marker, label=method)
        right.fill_between(x, rows["low"], rows["high"], color=style.color, alpha=0.15, lw=0)
    right.set_ylabel("training seconds per optimiser step")
    right.set_title("step time (median, band: min-max over seeds)", fontsize=9)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("output labels L")
        ax.grid(alpha=0.3, which="both")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(_plain))
            axis.set_minor_formatter(FuncFormatter(_plain_125))
        ax.legend(fontsize=8)
    if ratios.empty:
        _empty(left, "no ratios")
    if steps.empty:
        _empty(right, "no successful runs")
    fig.suptitle(f"Crossover: {reference} against each peer over the label count"
                 + (f" ({note})" if note else ""), fontsize=10)
    return fig


def save_figure(fig: Figure, png: str | Path, svg: str | Path) -> None:
    """Write a figure as PNG (150 dpi) and SVG."""
    fig.savefig(png, dpi=150)
    fig.savefig(svg)
