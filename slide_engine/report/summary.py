"""Aggregation: curves, sidecars and benchmark records -> tidy curve table and summary rows.

The pipeline knows each run by its grid point (dataset, method, device, threads, seed); those
identifiers are taken from the grid, not from the curve, so a method's config name (e.g.
``slide-mongoose``) labels its rows even though the engine writes its own method name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slide_engine.report.series import speedup, time_to_target, time_to_target_over_seeds
from slide_engine.runlog import CURVE_COLUMNS, read_sidecar

__all__ = [
    "RUN_KEYS",
    "SUMMARY_COLUMNS",
    "RunRecord",
    "add_speedups",
    "load_run",
    "speedup_column",
    "summarize",
    "summarize_run",
    "target_p_at_1",
    "tidy_curves",
]

#: The columns that identify a run (a grid point).
RUN_KEYS: tuple[str, ...] = ("dataset", "method", "device", "threads", "seed")

#: Columns of results/summary.csv, in order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    *RUN_KEYS,
    "status",
    "reason",
    "iterations",
    "epochs",
    "train_seconds",
    "startup_seconds",
    "seconds_per_epoch",
    "final_p_at_1",
    "final_p_at_3",
    "final_p_at_5",
    "best_p_at_1",
    "best_p_at_3",
    "best_p_at_5",
    "target_p_at_1",
    "time_to_target_s",
    "speedup_vs_reference",
    "peak_rss_mb",
    "mult_fraction",
    "active_mean",
)


@dataclass(frozen=True)
class RunRecord:
    """Everything recorded about one grid point.

    Attributes
    ----------
    key : mapping
        dataset, method, device, threads, seed.
    curve : DataFrame
        The curve rows (empty for a failed run).
    sidecar : mapping
        The sidecar JSON (status, stop_reason, iterations, train_seconds, config, ...).
    peak_rss_mb : float
        ``max_rss`` of the job's benchmark record (MB), NaN when unknown.
    n_train : int
        Training points of the dataset (to turn iterations into epochs).
    """

    key: Mapping[str, Any]
    curve: pd.DataFrame
    sidecar: Mapping[str, Any]
    peak_rss_mb: float
    n_train: int


def load_run(
    key: Mapping[str, Any],
    curve_csv: str | Path,
    sidecar_json: str | Path,
    benchmark_tsv: str | Path | None,
    n_train: int,
) -> RunRecord:
    """Read one run's files into a :class:`RunRecord`.

    A missing or unreadable sidecar counts as a failed run with that reason; a benchmark file
    without a numeric ``max_rss`` gives NaN memory.
    """
    curve = pd.read_csv(curve_csv)
    sidecar = read_sidecar(sidecar_json) or {
        "status": "failed",
        "stop_reason": f"no readable sidecar {Path(sidecar_json).name}",
    }
    peak = math.nan
    if benchmark_tsv is not None and Path(benchmark_tsv).exists():
        bench = pd.read_csv(benchmark_tsv, sep="\t")
        if "max_rss" in bench and not bench.empty:
            peak = float(pd.to_numeric(bench["max_rss"], errors="coerce").max())
    return RunRecord(dict(key), curve, sidecar, peak, int(n_train))


def tidy_curves(records: Sequence[RunRecord]) -> pd.DataFrame:
    """All curve rows of all runs in one long table, identified by the grid point.

    The engine's own ``method``/``dataset``/... values are replaced by the run's key.
    """
    frames = []
    for rec in records:
        if rec.curve.empty:
            continue
        frame = rec.curve.copy()
        for name in RUN_KEYS:
            frame[name] = rec.key[name]
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    table = pd.concat(frames, ignore_index=True)
    ordered = [c for c in CURVE_COLUMNS if c in table] + [
        c for c in table if c not in CURVE_COLUMNS
    ]
    return table[ordered]


def _batch_size(sidecar: Mapping[str, Any]) -> int | None:
    run = (sidecar.get("config") or {}).get("run") or {}
    size = run.get("batch_size")
    return int(size) if size else None


def summarize_run(rec: RunRecord, target: float) -> dict[str, Any]:
    """One summary row for one run.

    Parameters
    ----------
    rec : RunRecord
        The run.
    target : float
        The dataset's P@1 target (NaN if none could be set).

    Returns
    -------
    dict
        Keyed by :data:`SUMMARY_COLUMNS`. ``final_*`` come from the final full-test row,
        ``best_*`` are maxima over the training-time (subset) evaluations, ``epochs`` is
        iterations / batches per epoch, ``seconds_per_epoch`` training seconds per epoch,
        ``time_to_target_s`` the training seconds of the first subset evaluation at or above
        the target, ``mult_fraction``/``active_mean`` means over the training-time rows (NaN
        when the method does not report them).
    """
    row: dict[str, Any] = {name: math.nan for name in SUMMARY_COLUMNS}
    row.update({name: rec.key[name] for name in RUN_KEYS})
    row["status"] = rec.sidecar.get("status", "failed")
    row["reason"] = rec.sidecar.get("stop_reason", "")
    row["peak_rss_mb"] = rec.peak_rss_mb
    row["target_p_at_1"] = target
    row["startup_seconds"] = float(rec.sidecar.get("startup_seconds", math.nan))
    curve = rec.curve
    if curve.empty:
        return row
    subset = curve[curve["eval_set"] == "subset"]
    full = curve[curve["eval_set"] == "full"]
    last = curve.iloc[-1]
    # the sidecar knows where the run stopped; a diverged run's last row is an earlier evaluation
    row["iterations"] = int(rec.sidecar.get("iterations", last["iteration"]))
    row["train_seconds"] = float(rec.sidecar.get("train_seconds", last["train_seconds"]))
    batch = _batch_size(rec.sidecar)
    if batch and rec.n_train > 0 and row["iterations"] > 0:
        per_epoch = math.ceil(rec.n_train / batch)
        row["epochs"] = row["iterations"] / per_epoch
        row["seconds_per_epoch"] = row["train_seconds"] / row["epochs"]
    for k in (1, 3, 5):
        col = f"p_at_{k}"
        if not full.empty:
            row[f"final_{col}"] = float(full[col].iloc[-1])
        if not subset.empty:
            row[f"best_{col}"] = float(subset[col].max())
    if not subset.empty:
        row["time_to_target_s"] = time_to_target(
            subset["train_seconds"].to_numpy(), subset["p_at_1"].to_numpy(), target
        )
    training = subset[subset["iteration"] > 0]
    for extra in ("mult_fraction", "active_mean"):
        if extra in training and not training.empty:
            values = pd.to_numeric(training[extra], errors="coerce")
            row[extra] = float(values.mean()) if values.notna().any() else math.nan
    return row


def target_p_at_1(
    records: Sequence[RunRecord], dataset: str, settings: Mapping[str, Any]
) -> float:
    """The P@1 target of a dataset.

    Parameters
    ----------
    records : sequence of RunRecord
        All runs (only this dataset's are used).
    dataset : str
        The dataset.
    settings : mapping
        The config's ``target`` section: ``p_at_1`` (absolute, wins when not None), else
        ``fraction`` times the best subset P@1 any run of method ``reference`` reached.

    Returns
    -------
    float
        The target, or NaN when the reference method has no successful run on the dataset.
    """
    if settings.get("p_at_1") is not None:
        return float(settings["p_at_1"])
    best = [
        float(rec.curve.loc[rec.curve["eval_set"] == "subset", "p_at_1"].max())
        for rec in records
        if rec.key["dataset"] == dataset
        and rec.key["method"] == settings["reference"]
        and not rec.curve.empty
        and rec.sidecar.get("status") != "failed"
    ]
    best = [b for b in best if np.isfinite(b)]
    return float(settings["fraction"]) * max(best) if best else math.nan


def speedup_column(baseline: str, reference: str | None) -> str:
    """Summary column of the speed-up over ``baseline``: ``speedup_vs_reference`` for the
    target's reference method, ``speedup_vs_<baseline>`` for any other."""
    return "speedup_vs_reference" if baseline == reference else f"speedup_vs_{baseline}"


def add_speedups(
    table: pd.DataFrame, reference: str | None, compare_to: Sequence[str] = ()
) -> pd.DataFrame:
    """Speed-up columns of the summary: how many times sooner each run reached the target.

    Parameters
    ----------
    table : DataFrame
        Summary rows (:data:`SUMMARY_COLUMNS`).
    reference : str or None
        The target's reference method; its column is ``speedup_vs_reference`` (all NaN when
        None).
    compare_to : sequence of str
        Further baselines; each gets a column ``speedup_vs_<method>`` (after
        ``speedup_vs_reference``).

    Returns
    -------
    DataFrame
        A copy of ``table`` where ``speedup_vs_X`` of a run is X's time to target divided by the
        run's, X's time being the median over X's runs (seeds) on the same dataset, device and
        thread count, defined only when all of them reached the target
        (:func:`~slide_engine.report.series.time_to_target_over_seeds`). NaN when either time
        is missing (never reached, failed, X has no run at that grid point).
    """
    out = table.copy()
    baselines = ([reference] if reference is not None else []) + [
        m for m in compare_to if m != reference
    ]
    out["speedup_vs_reference"] = math.nan
    where = ["dataset", "device", "threads"]
    for base in baselines:
        column = speedup_column(base, reference)
        base_rows = out[out["method"] == base]
        medians = {
            key: time_to_target_over_seeds(group["time_to_target_s"].astype(float))
            for key, group in base_rows.groupby(where, sort=False)
        }
        out[column] = [
            speedup(medians.get(tuple(key), math.nan), float(t))
            for key, t in zip(
                out[where].itertuples(index=False, name=None), out["time_to_target_s"], strict=True
            )
        ]
    first = list(out.columns).index("speedup_vs_reference") + 1
    extra = [speedup_column(m, reference) for m in baselines if m != reference]
    rest = [c for c in out.columns if c not in extra]
    return out[rest[:first] + extra + rest[first:]]


def summarize(records: Sequence[RunRecord], settings: Mapping[str, Any]) -> pd.DataFrame:
    """The summary table: one row per run, in record order.

    Columns: :data:`SUMMARY_COLUMNS`, plus ``speedup_vs_<method>`` after
    ``speedup_vs_reference`` for every method of ``settings["compare_to"]`` (optional) other
    than ``settings["reference"]`` (see :func:`add_speedups`).
    """
    targets = {
        ds: target_p_at_1(records, ds, settings) for ds in {r.key["dataset"] for r in records}
    }
    rows = [summarize_run(rec, targets[rec.key["dataset"]]) for rec in records]
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return add_speedups(table, settings.get("reference"), settings.get("compare_to") or ())
