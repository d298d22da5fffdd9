"""Time to several accuracy levels and the headline: SLIDE against each peer, per dataset.

One rule for every comparison of the suite (the pipeline's summary, headline and figures, and
the bench): a *level* is a fraction of the best subset P@1 that any method of the grid reached
on the dataset, and a run's time to a level is the training seconds of its first evaluation at or
above it (:func:`~slide_bench.report.series.time_to_target`). Nothing here reads files or draws.

The headline compares one method (``slide`` by default) with every other method of the grid
(its *peers*) at their largest thread count, seed by seed (the same seed means the same batch
order and evaluation subset):

- ``step_time_ratio``: the peer's training seconds per optimiser step over SLIDE's (median over
  seeds); above 1 SLIDE's steps are cheaper;
- ``tta_ratio_*``: the peer's time to the headline level over SLIDE's, per seed, then the median,
  min and max over seeds; above 1 SLIDE got there sooner. When only SLIDE reached the level in a
  seed the ratio is ``inf`` (the peer never got there in the same training budget), when only
  the peer did it is 0, when neither did it is NaN;
- ``best_p1_diff`` / ``final_p1_diff``: SLIDE's best subset P@1 / final full-test P@1 minus the
  peer's (median over seeds);
- ``verdict``: one sentence saying who reached the headline level first and by how much, or who
  never reached it, and where another level reverses the order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from slide_bench.report.series import headline_runs, time_to_target

__all__ = [
    "HEADLINE_COLUMNS",
    "LEVEL_COLUMNS",
    "RATIO_COLUMNS",
    "headline",
    "level_table",
    "level_targets",
    "level_times",
]

#: Columns of results/headline.csv, in order.
HEADLINE_COLUMNS: tuple[str, ...] = (
    "dataset", "peer", "step_time_ratio", "tta_ratio_median", "tta_ratio_min", "tta_ratio_max",
    "best_p1_diff", "final_p1_diff", "verdict",
)
#: Columns of results/time-to-level.csv (one row per dataset, method, device and level).
LEVEL_COLUMNS: tuple[str, ...] = (
    "dataset", "method", "device", "threads", "adam", "level", "level_p1", "n_runs",
    "n_reached", "time_median_s", "time_min_s", "time_max_s", "best_p1", "train_seconds",
)
#: Columns of results/headline-levels.csv (the headline's ratios at every level).
RATIO_COLUMNS: tuple[str, ...] = (
    "dataset", "peer", "level", "level_p1", "slide_time_s", "peer_time_s", "tta_ratio_median",
    "tta_ratio_min", "tta_ratio_max", "slide_reached", "peer_reached", "n_seeds",
)


def level_targets(best_p1: Sequence[float], levels: Sequence[float]) -> dict[float, float]:
    """The P@1 of each level: ``level`` times the best P@1 of any run (NaN if none is finite).

    Parameters
    ----------
    best_p1 : sequence of float
        Best subset P@1 of every run of the dataset (all methods; failed runs excluded).
    levels : sequence of float
        Fractions in (0, 1].
    """
    finite = [float(b) for b in best_p1 if np.isfinite(b)]
    top = max(finite) if finite else math.nan
    return {float(level): float(level) * top for level in levels}


def level_times(curves: pd.DataFrame, targets: Mapping[float, float]) -> pd.DataFrame:
    """Every run's time to every level.

    Parameters
    ----------
    curves : DataFrame
        Curve rows of one dataset (columns dataset, method, device, threads, seed, eval_set,
        train_seconds, p_at_1); only ``eval_set == "subset"`` rows count.
    targets : mapping
        Level -> P@1 (:func:`level_targets`).

    Returns
    -------
    DataFrame
        One row per run and level: dataset, method, device, threads, seed, level, level_p1,
        time_s (NaN when the run never reached it).
    """
    keys = ["dataset", "method", "device", "threads", "seed"]
    subset = curves[curves["eval_set"] == "subset"]
    rows = []
    for key, run in subset.groupby(keys, sort=False):
        x = run["train_seconds"].to_numpy(dtype=float)
        y = run["p_at_1"].to_numpy(dtype=float)
        for level, p1 in targets.items():
            rows.append({**dict(zip(keys, key, strict=True)), "level": level, "level_p1": p1,
                         "time_s": time_to_target(x, y, p1)})
    return pd.DataFrame(rows, columns=[*keys, "level", "level_p1", "time_s"])


def _adam_of(runs: pd.DataFrame) -> str:
    values = sorted({str(v) for v in runs.get("adam", pd.Series(dtype=str)).dropna()})
    return "/".join(values) if values else ""


def level_table(summary: pd.DataFrame, times: pd.DataFrame) -> pd.DataFrame:
    """Time to each level per method and device, at its largest thread count (median over seeds).

    Parameters
    ----------
    summary : DataFrame
        Summary rows of one dataset (method, device, threads, seed, status, best_p_at_1,
        train_seconds; ``adam`` optional).
    times : DataFrame
        :func:`level_times` of the same dataset.

    Returns
    -------
    DataFrame
        :data:`LEVEL_COLUMNS`. ``time_median_s`` is defined only when every seed reached the
        level (:func:`~slide_bench.report.series.time_to_target_over_seeds`); ``time_min_s`` /
        ``time_max_s`` over the seeds that did.
    """
    runs = headline_runs(summary[summary["status"] != "failed"])
    rows = []
    for (method, device), group in runs.groupby(["method", "device"], sort=False):
        threads = int(group["threads"].iloc[0])
        mine = times[(times["method"] == method) & (times["device"] == device)
                     & (times["threads"] == threads)]
        for level, at in mine.groupby("level", sort=True):
            t = at["time_s"].to_numpy(dtype=float)
            hit = t[np.isfinite(t)]
            rows.append(dict(
                dataset=group["dataset"].iloc[0], method=method, device=device, threads=threads,
                adam=_adam_of(group), level=float(level), level_p1=float(at["level_p1"].iloc[0]),
                n_runs=len(group), n_reached=int(hit.size),
                time_median_s=float(np.median(t)) if hit.size == t.size and t.size else math.nan,
                time_min_s=float(hit.min()) if hit.size else math.nan,
                time_max_s=float(hit.max()) if hit.size else math.nan,
                best_p1=float(group["best_p_at_1"].astype(float).max()),
                train_seconds=float(group["train_seconds"].astype(float).min()),
            ))
    return pd.DataFrame(rows, columns=list(LEVEL_COLUMNS))


def tta_ratio(t_peer: float, t_slide: float) -> float:
    """Peer's time over SLIDE's for one seed: inf when only SLIDE reached, 0 when only the peer
    did, NaN when neither did (or SLIDE's time is 0: met before any step)."""
    slide_ok, peer_ok = np.isfinite(t_slide), np.isfinite(t_peer)
    if slide_ok and peer_ok:
        return t_peer / t_slide if t_slide > 0 else math.nan
    if slide_ok:
        return math.inf
    if peer_ok:
        return 0.0
    return math.nan


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    return float(np.median(v)), float(v.min()), float(v.max())


def _times(value: float) -> str:
    """A ratio: three significant digits below 10 (1.01x, 4.02x), whole numbers above (16x)."""
    return f"{value:.3g}x" if value < 10 else f"{value:.0f}x"


def _name(method: str, device: str, devices: Sequence[str]) -> str:
    return f"{method} ({device})" if len(set(devices)) > 1 else method


def headline(
    summary: pd.DataFrame,
    times: pd.DataFrame,
    method: str,
    peers: Sequence[str] | None,
    headline_level: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The headline rows of one dataset and the same ratios at every level.

    Parameters
    ----------
    summary : DataFrame
        Summary rows of one dataset (dataset, method, device, threads, seed, status, reason,
        iterations, train_seconds, best_p_at_1, final_p_at_1; ``active_mean`` optional).
    times : DataFrame
        :func:`level_times` of the dataset.
    method : str
        The method the headline is about (SLIDE).
    peers : sequence of str or None
        Methods to compare with (None: every other method of ``summary``, in order).
    headline_level : float
        The level of the ``tta_ratio_*`` columns and of the verdict's first clause.

    Returns
    -------
    (DataFrame, DataFrame)
        :data:`HEADLINE_COLUMNS` (one row per peer and device) and :data:`RATIO_COLUMNS` (one row
        per peer, device and level). Both are empty when ``method`` has no successful run.
    """
    ok = summary[summary["status"] != "failed"]
    runs = headline_runs(ok)
    mine = runs[runs["method"] == method]
    if mine.empty:
        return (pd.DataFrame(columns=list(HEADLINE_COLUMNS)),
                pd.DataFrame(columns=list(RATIO_COLUMNS)))
    dataset = str(mine["dataset"].iloc[0])
    if peers is None:
        peers = [m for m in dict.fromkeys(summary["method"]) if m != method]
    devices = list(runs["device"].unique())
    slide_device = "cpu" if "cpu" in set(mine["device"]) else mine["device"].iloc[0]
    slide_t = _run_times(times, method, slide_device, int(mine["threads"].iloc[0]))
    head_rows, level_rows = [], []
    for peer in peers:
        # a peer that could not run (e.g. no GPU) keeps its row: the headline says why
        head_rows += _did_not_run(summary, runs, peer, dataset)
        for device, peer_runs in runs[runs["method"] == peer].groupby("device", sort=False):
            peer_t = _run_times(times, peer, device, int(peer_runs["threads"].iloc[0]))
            seeds = sorted(set(mine["seed"]) & set(peer_runs["seed"]))
            if not seeds:
                continue
            name = _name(peer, device, devices)
            per_level = _per_level(times, slide_t, peer_t, seeds, dataset, name)
            level_rows += [{k: row[k] for k in RATIO_COLUMNS} for row in per_level.values()]
            head = per_level.get(float(headline_level)) or per_level.get(headline_level)
            head_rows.append(_head_row(method, name, dataset, mine, peer_runs, seeds, head,
                                       per_level))
    return (pd.DataFrame(head_rows, columns=list(HEADLINE_COLUMNS)),
            pd.DataFrame(level_rows, columns=list(RATIO_COLUMNS)))


def _run_times(times: pd.DataFrame, method: str, device: str, threads: int) -> pd.DataFrame:
    return times[(times["method"] == method) & (times["device"] == device)
                 & (times["threads"] == threads)]


def _did_not_run(summary: pd.DataFrame, runs: pd.DataFrame, peer: str,
                 dataset: str) -> list[dict[str, Any]]:
    """Headline rows of the devices where ``peer`` only failed, with the reason as verdict."""
    failed = summary[summary["status"] == "failed"]
    rows_out = []
    for device, rows in failed[failed["method"] == peer].groupby("device", sort=False):
        if ((runs["method"] == peer) & (runs["device"] == device)).any():
            continue
        rows_out.append(dict(
            dataset=dataset, peer=_name(peer, device, list(summary["device"].unique())),
            step_time_ratio=math.nan, tta_ratio_median=math.nan, tta_ratio_min=math.nan,
            tta_ratio_max=math.nan, best_p1_diff=math.nan, final_p1_diff=math.nan,
            verdict=f"{peer} did not run: {rows['reason'].iloc[0]}.",
        ))
    return rows_out


def _per_level(times: pd.DataFrame, slide_t: pd.DataFrame, peer_t: pd.DataFrame,
               seeds: list[int], dataset: str, name: str) -> dict[float, dict[str, Any]]:
    """SLIDE's and the peer's times to each level over the common seeds, and their ratios."""
    levels = sorted(times["level"].unique()) if not times.empty else []
    per_level = {}
    for level in levels:
        s_at = slide_t[slide_t["level"] == level].set_index("seed")["time_s"]
        p_at = peer_t[peer_t["level"] == level].set_index("seed")["time_s"]
        ratios = [tta_ratio(float(p_at.get(s, math.nan)), float(s_at.get(s, math.nan)))
                  for s in seeds]
        s_times = [float(s_at.get(s, math.nan)) for s in seeds]
        p_times = [float(p_at.get(s, math.nan)) for s in seeds]
        med, lo, hi = _stats(ratios)
        level_p1 = float(times.loc[times["level"] == level, "level_p1"].iloc[0])
        per_level[level] = dict(
            dataset=dataset, peer=name, level=float(level), level_p1=level_p1,
            slide_time_s=_median_if_all(s_times), peer_time_s=_median_if_all(p_times),
            tta_ratio_median=med, tta_ratio_min=lo, tta_ratio_max=hi,
            slide_reached=int(np.isfinite(s_times).sum()),
            peer_reached=int(np.isfinite(p_times).sum()), n_seeds=len(seeds),
            s_times=s_times, p_times=p_times,
        )
    return per_level


def _per_step(runs: pd.DataFrame, seed: int) -> float:
    r = runs.loc[seed]
    it = float(r["iterations"])
    return float(r["train_seconds"]) / it if it > 0 else math.nan


def _head_row(method: str, name: str, dataset: str, mine: pd.DataFrame,
              peer_runs: pd.DataFrame, seeds: list[int], head: Mapping[str, Any] | None,
              per_level: Mapping[float, Mapping[str, Any]]) -> dict[str, Any]:
    """The headline row of one peer on one device: step-time ratio, time-to-level ratios at the
    headline level, P@1 differences (medians over the common seeds) and the verdict."""
    slide_runs, peer_by_seed = mine.set_index("seed"), peer_runs.set_index("seed")
    step_ratio = _stats([_per_step(peer_by_seed, s) / _per_step(slide_runs, s)
                         for s in seeds])[0]
    best_diff = _stats([float(slide_runs.loc[s, "best_p_at_1"])
                        - float(peer_by_seed.loc[s, "best_p_at_1"]) for s in seeds])[0]
    final_diff = _stats([float(slide_runs.loc[s, "final_p_at_1"])
                         - float(peer_by_seed.loc[s, "final_p_at_1"]) for s in seeds])[0]
    verdict = _verdict(method, name, head, per_level, mine, peer_runs, step_ratio)
    return dict(
        dataset=dataset, peer=name, step_time_ratio=step_ratio,
        tta_ratio_median=head["tta_ratio_median"] if head else math.nan,
        tta_ratio_min=head["tta_ratio_min"] if head else math.nan,
        tta_ratio_max=head["tta_ratio_max"] if head else math.nan,
        best_p1_diff=best_diff, final_p1_diff=final_diff, verdict=verdict,
    )


def _median_if_all(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.median(v)) if v.size and np.isfinite(v).all() else math.nan


def _seeds_note(row: Mapping[str, Any]) -> str:
    n = row["n_seeds"]
    if n == 1:
        return "1 seed"
    lo, hi = row["tta_ratio_min"], row["tta_ratio_max"]
    spread = "" if not (np.isfinite(lo) and np.isfinite(hi)) else f", {lo:.2g}-{hi:.2g}x"
    return f"median of {n} seeds{spread}"


def _clause(method: str, peer: str, row: Mapping[str, Any], budget: float) -> str:
    """Who reached one level first, as a clause."""
    p1 = row["level_p1"]
    pct = f"{row['level']:.0%} of the grid's best"
    s_ok = row["slide_reached"] == row["n_seeds"]
    p_ok = row["peer_reached"] == row["n_seeds"]
    ratio = row["tta_ratio_median"]
    if s_ok and p_ok:
        if ratio == 1:
            return (f"{method} and {peer} reached P@1 {p1:.3g} ({pct}) at the same time "
                    f"({row['slide_time_s']:.3g} s; {_seeds_note(row)})")
        if ratio > 1:
            return (f"{method} reached P@1 {p1:.3g} ({pct}) {_times(ratio)} sooner than {peer} "
                    f"({row['slide_time_s']:.3g} s against {row['peer_time_s']:.3g} s; "
                    f"{_seeds_note(row)})")
        return (f"{peer} reached P@1 {p1:.3g} ({pct}) {_times(1 / ratio)} sooner than {method} "
                f"({row['peer_time_s']:.3g} s against {row['slide_time_s']:.3g} s; "
                f"{_seeds_note(row)})")
    if s_ok and row["peer_reached"] == 0:
        return (f"{method} reached P@1 {p1:.3g} ({pct}) in {row['slide_time_s']:.3g} s; "
                f"{peer} never did in {budget:.3g} training seconds")
    if p_ok and row["slide_reached"] == 0:
        return (f"{peer} reached P@1 {p1:.3g} ({pct}) in {row['peer_time_s']:.3g} s; "
                f"{method} never did in its training budget")
    if row["slide_reached"] == 0 and row["peer_reached"] == 0:
        return f"neither {method} nor {peer} reached P@1 {p1:.3g} ({pct})"
    reached = (f"P@1 {p1:.3g} ({pct}) was reached in {row['slide_reached']} of "
               f"{row['n_seeds']} seeds by {method} and {row['peer_reached']} by {peer}")
    if not np.isfinite(ratio) and ratio != math.inf:
        return reached
    if ratio == math.inf or ratio > 1:
        return f"{reached}; {method} sooner (peer/{method} time {_ratio_range(row)})"
    if ratio < 1:
        return f"{reached}; {peer} sooner (peer/{method} time {_ratio_range(row)})"
    return f"{reached}; a tie over the seeds (peer/{method} time {_ratio_range(row)})"


def _ratio_range(row: Mapping[str, Any]) -> str:
    """``median 0.35x, 0-0.7x over seeds`` (``inf``: only SLIDE got there in that seed)."""
    def show(v: float) -> str:
        return "inf" if v == math.inf else f"{v:.2g}x"

    return (f"median {show(row['tta_ratio_median'])}, {show(row['tta_ratio_min'])}-"
            f"{show(row['tta_ratio_max'])} over seeds")


def _winner(row: Mapping[str, Any]) -> str | None:
    r = row["tta_ratio_median"]
    if not np.isfinite(r) and r != math.inf:
        return None
    return "slide" if r > 1 else ("peer" if r < 1 else None)


def _verdict(method: str, peer: str, head: Mapping[str, Any] | None,
             per_level: Mapping[float, Mapping[str, Any]], slide_runs: pd.DataFrame,
             peer_runs: pd.DataFrame, step_ratio: float) -> str:
    budget = float(peer_runs["train_seconds"].astype(float).min())
    if head is None:
        return f"no headline level for {method} against {peer}"
    parts = [_clause(method, peer, head, budget)]
    # the level where the other method was first, if any: "which method wins depends on the level"
    first = _winner(head)
    for level, row in sorted(per_level.items()):
        other = _winner(row)
        if level != head["level"] and other is not None and first is not None and other != first:
            parts.append("but " + _clause(method, peer, row, budget))
            break
    if np.isfinite(step_ratio):
        parts.append(f"{peer}'s steps were {_times(1 / step_ratio)} cheaper" if step_ratio < 1
                     else f"{method}'s steps were {_times(step_ratio)} cheaper")
    active = [_active(slide_runs), _active(peer_runs)]
    if all(np.isfinite(active)):
        parts.append(f"active output neurons per sample {active[0]:.0f} against {active[1]:.0f}")
    capped = [str(r) for r in [*slide_runs["reason"], *peer_runs["reason"]]
              if str(r).startswith("completed")]
    if capped:
        parts.append(f"WARNING: a run stopped at the epoch cap ({capped[0]}), not the time budget")
    return "; ".join(parts) + "."


def _active(runs: pd.DataFrame) -> float:
    if "active_mean" not in runs:
        return math.nan
    v = pd.to_numeric(runs["active_mean"], errors="coerce")
    return float(v.median()) if v.notna().any() else math.nan


def headline_tables(
    curves: pd.DataFrame, summary: pd.DataFrame, settings: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three tables of every dataset: headline, ratios at every level, time to every level.

    Parameters
    ----------
    curves : DataFrame
        results/curves.csv (every run's curve rows, labelled by grid point).
    summary : DataFrame
        results/summary.csv.
    settings : mapping
        The config's ``target`` section: ``method``, ``peers`` (None: every other method),
        ``levels`` and ``headline`` (one of the levels).

    Returns
    -------
    (DataFrame, DataFrame, DataFrame)
        :data:`HEADLINE_COLUMNS`, :data:`RATIO_COLUMNS` and :data:`LEVEL_COLUMNS` rows, datasets
        in summary order.
    """
    levels = [float(v) for v in settings["levels"]]
    heads, ratios, tables = [], [], []
    for dataset in dict.fromkeys(summary["dataset"].astype(str)):
        rows = summary[summary["dataset"].astype(str) == dataset]
        ok = rows[rows["status"] != "failed"]
        targets = level_targets(ok["best_p_at_1"].astype(float), levels)
        times = level_times(curves[curves["dataset"].astype(str) == dataset], targets)
        tables.append(level_table(rows, times))
        head, ratio = headline(rows, times, settings["method"], settings.get("peers"),
                               float(settings["headline"]))
        heads.append(head)
        ratios.append(ratio)

    def cat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=list(columns))
        return pd.concat(frames, ignore_index=True)

    return (cat(heads, HEADLINE_COLUMNS), cat(ratios, RATIO_COLUMNS),
            cat(tables, LEVEL_COLUMNS))
