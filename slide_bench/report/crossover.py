"""The crossover sweep: SLIDE against each peer over the label count, as tidy rows and bands.

Pure transforms (no files, no drawing) from the pipeline's summary and curve tables of a sweep
(one dataset per label count) to:

- :func:`crossover_table`: one row per run (label count, method, seed) with its training seconds
  per step, its time to the headline level and, for every peer, the peer's time and step cost
  over SLIDE's in the same seed. The level and the time to it follow the headline's one rule
  (:mod:`slide_bench.report.headline`): ``target.headline`` times the best subset P@1 any method
  reached on that dataset, and the training seconds of a run's first evaluation at or above it;
  a seed's ratio is ``inf`` when only SLIDE reached the level, 0 when only the peer did.
- :func:`crossover_bands`: median and min-max over seeds of those ratios and of every method's
  step time, per label count (what the figure draws).
- :func:`crossover_points`: where SLIDE overtakes each peer: the label counts between which the
  median ratio crosses 1 for good, and an estimate interpolated in (log L, log ratio).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from slide_bench.report.headline import level_targets, level_times, tta_ratio
from slide_bench.report.series import headline_runs

__all__ = [
    "BAND_COLUMNS",
    "CROSSOVER_COLUMNS",
    "POINT_COLUMNS",
    "crossover_bands",
    "crossover_points",
    "crossover_table",
]

#: Columns of results/crossover.csv, in order.
CROSSOVER_COLUMNS: tuple[str, ...] = (
    "dataset", "n_labels", "method", "device", "threads", "seed", "status", "adam",
    "time_budget_s", "iterations", "train_seconds", "step_seconds", "best_p_at_1",
    "final_p_at_1", "level", "level_p1", "time_to_target_s", "reference", "reference_step_s",
    "reference_time_s", "step_time_ratio", "tta_ratio", "git_sha", "cpu_model", "cpu_count",
)
#: Columns of :func:`crossover_bands`.
BAND_COLUMNS: tuple[str, ...] = (
    "quantity", "n_labels", "method", "median", "low", "high", "n_seeds", "n_finite",
)
#: Columns of :func:`crossover_points`.
POINT_COLUMNS: tuple[str, ...] = (
    "peer", "overtakes_above", "overtakes_below", "estimate", "reading",
)
_PROVENANCE = ("git_sha", "cpu_model", "cpu_count")


def _seconds(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _step_seconds(row: Mapping[str, Any]) -> float:
    it = float(row["iterations"])
    secs = float(row["train_seconds"])
    return secs / it if np.isfinite(it) and it > 0 and np.isfinite(secs) else math.nan


def crossover_table(
    curves: pd.DataFrame,
    summary: pd.DataFrame,
    label_counts: Mapping[str, int],
    settings: Mapping[str, Any],
    budgets: Mapping[str, float] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per run of the sweep, with its ratios against the headline method.

    Parameters
    ----------
    curves : DataFrame
        results/curves.csv (columns dataset, method, device, threads, seed, eval_set,
        train_seconds, p_at_1).
    summary : DataFrame
        results/summary.csv (dataset, method, device, threads, seed, status, adam, iterations,
        train_seconds, best_p_at_1, final_p_at_1).
    label_counts : mapping
        Dataset -> label count; only these datasets are kept, in label-count order.
    settings : mapping
        The config's ``target`` section: ``method`` (the reference, SLIDE) and ``headline``
        (the level, a fraction of the best P@1 of the dataset).
    budgets : mapping, optional
        Dataset -> training seconds of every run (``time_budget_s``; NaN when not given).
    provenance : mapping, optional
        ``git_sha``, ``cpu_model``, ``cpu_count`` of the machine (results/environment.json).

    Returns
    -------
    DataFrame
        :data:`CROSSOVER_COLUMNS`, runs at each method's largest thread count. ``step_seconds``
        is training seconds per optimiser step; ``time_to_target_s`` NaN when the run never
        reached ``level_p1``; ``reference_*`` are the reference method's run of the same seed;
        ``step_time_ratio`` = step_seconds / reference_step_s and ``tta_ratio`` = time_to_target_s
        / reference_time_s (above 1: the reference was cheaper / sooner; ``inf``: only the
        reference reached the level; 0: only this method did; NaN: neither). The reference's
        own rows have NaN ratios.
    """
    method = settings["method"]
    level = float(settings["headline"])
    prov = {key: (provenance or {}).get(key, "") for key in _PROVENANCE}
    rows = []
    for dataset in sorted(label_counts, key=lambda d: label_counts[d]):
        runs = summary[summary["dataset"].astype(str) == dataset]
        if runs.empty:
            continue
        ok = runs[runs["status"] != "failed"]
        p1 = level_targets(ok["best_p_at_1"].astype(float), [level])[level]
        times = level_times(curves[curves["dataset"].astype(str) == dataset], {level: p1})
        time_of = {(r.method, r.device, int(r.threads), int(r.seed)): float(r.time_s)
                   for r in times.itertuples()}
        top = headline_runs(runs)
        ref = top[(top["method"] == method) & (top["status"] != "failed")]
        ref_by_seed = {int(r["seed"]): r for _, r in ref.iterrows()}
        for _, r in top.iterrows():
            key = (r["method"], r["device"], int(r["threads"]), int(r["seed"]))
            failed = r["status"] == "failed"
            t = math.nan if failed else time_of.get(key, math.nan)
            step = math.nan if failed else _step_seconds(r)
            base = ref_by_seed.get(int(r["seed"]))
            is_ref = r["method"] == method
            ref_step = _step_seconds(base) if base is not None else math.nan
            ref_t = (time_of.get((base["method"], base["device"], int(base["threads"]),
                                  int(base["seed"])), math.nan)
                     if base is not None else math.nan)
            comparable = not (is_ref or failed or base is None)
            rows.append(dict(
                dataset=dataset, n_labels=int(label_counts[dataset]), method=r["method"],
                device=r["device"], threads=int(r["threads"]), seed=int(r["seed"]),
                status=r["status"], adam=r.get("adam", ""),
                time_budget_s=_seconds((budgets or {}).get(dataset)),
                iterations=r["iterations"], train_seconds=r["train_seconds"],
                step_seconds=step, best_p_at_1=r["best_p_at_1"], final_p_at_1=r["final_p_at_1"],
                level=level, level_p1=p1, time_to_target_s=t, reference=method,
                reference_step_s=ref_step, reference_time_s=ref_t,
                step_time_ratio=step / ref_step if comparable and ref_step > 0 else math.nan,
                tta_ratio=tta_ratio(t, ref_t) if comparable else math.nan,
                **prov,
            ))
    return pd.DataFrame(rows, columns=list(CROSSOVER_COLUMNS))


def _band(values: Sequence[float]) -> tuple[float, float, float, int]:
    """Median, min, max of the non-NaN values (``inf`` kept) and how many are finite."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan, 0
    return float(np.median(v)), float(v.min()), float(v.max()), int(np.isfinite(v).sum())


def crossover_bands(table: pd.DataFrame) -> pd.DataFrame:
    """Median and min-max over seeds, per label count: ratios and step times.

    Parameters
    ----------
    table : DataFrame
        :func:`crossover_table` rows.

    Returns
    -------
    DataFrame
        :data:`BAND_COLUMNS`; ``quantity`` ``"tta_ratio"`` (one row per label count and peer:
        the peer's time to the level over the reference's, over the seeds where at least one of
        the two reached it) or ``"step_seconds"`` (one row per label count and method, the
        reference included). ``n_seeds`` counts the runs, ``n_finite`` the finite values among
        them. Sorted by quantity, method (table order) and label count.
    """
    out = []
    order = list(dict.fromkeys(table["method"]))
    for quantity, column in (("tta_ratio", "tta_ratio"), ("step_seconds", "step_seconds")):
        for method in order:
            mine = table[table["method"] == method]
            if quantity == "tta_ratio" and (mine["method"] == mine["reference"]).all():
                continue
            for n_labels, group in mine.groupby("n_labels", sort=True):
                med, lo, hi, n_finite = _band(group[column].astype(float).tolist())
                out.append(dict(quantity=quantity, n_labels=int(n_labels), method=method,
                                median=med, low=lo, high=hi, n_seeds=len(group),
                                n_finite=n_finite))
    return pd.DataFrame(out, columns=list(BAND_COLUMNS))


def crossover_points(bands: pd.DataFrame) -> pd.DataFrame:
    """Where the reference overtakes each peer: the median ratio crosses 1 and stays above.

    Parameters
    ----------
    bands : DataFrame
        :func:`crossover_bands` rows (only ``quantity == "tta_ratio"`` is read).

    Returns
    -------
    DataFrame
        :data:`POINT_COLUMNS`, one row per peer. ``overtakes_above`` / ``overtakes_below`` are
        the sweep's label counts between which the median ratio goes from at most 1 to above 1
        for the last time (the reference is ahead at every larger label count), ``estimate``
        the label count where the ratio is 1 on the line through those two points in
        (log L, log ratio) (NaN when a ratio there is 0 or ``inf``). When the reference is ahead
        at every label count both are the smallest label count; when it is not ahead at the
        largest, both are NaN. ``reading`` says which case it is. Label counts whose median is
        NaN (neither method reached the level in any seed) are skipped.
    """
    rows = []
    ratios = bands[bands["quantity"] == "tta_ratio"]
    for peer, group in ratios.groupby("method", sort=False):
        g = group[group["median"].notna()].sort_values("n_labels")
        labels = g["n_labels"].to_numpy(dtype=float)
        med = g["median"].to_numpy(dtype=float)
        row = dict(peer=peer, overtakes_above=math.nan, overtakes_below=math.nan,
                   estimate=math.nan, reading="")
        if med.size == 0:
            row["reading"] = "no label count where either method reached the level"
        elif med[-1] <= 1:
            row["reading"] = (f"not ahead at the largest label count ({labels[-1]:.0f}: "
                              f"peer/reference time {med[-1]:.3g})")
        else:
            behind = np.flatnonzero(med <= 1)
            if behind.size == 0:
                row.update(overtakes_above=labels[0], overtakes_below=labels[0])
                row["reading"] = f"ahead at every label count from {labels[0]:.0f}"
            else:
                i = int(behind[-1])
                lo, hi = labels[i], labels[i + 1]
                row.update(overtakes_above=lo, overtakes_below=hi)
                r_lo, r_hi = med[i], med[i + 1]
                if 0 < r_lo and np.isfinite(r_hi):
                    frac = -math.log(r_lo) / (math.log(r_hi) - math.log(r_lo))
                    row["estimate"] = math.exp(math.log(lo) + frac * math.log(hi / lo))
                row["reading"] = (f"overtakes between {lo:.0f} and {hi:.0f} labels "
                                  f"(peer/reference time {r_lo:.3g} -> {r_hi:.3g})")
        rows.append(row)
    return pd.DataFrame(rows, columns=list(POINT_COLUMNS))
