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

import pandas as pd

from slide_bench.report.headline import level_targets
from slide_bench.report.series import time_to_target
from slide_bench.runlog import CURVE_COLUMNS, read_sidecar

__all__ = [
    "RUN_KEYS",
    "SUMMARY_COLUMNS",
    "RunRecord",
    "load_run",
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
    "adam",
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
    row["adam"] = (rec.sidecar.get("optimizer") or rec.sidecar.get("config") or {}).get("adam", "")
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
    """The headline P@1 level of a dataset: ``settings["headline"]`` times the best subset P@1
    that any run of any method reached on it (NaN when no run succeeded).

    The same level as :mod:`slide_bench.report.headline` (``level_targets``).
    """
    best = [
        float(rec.curve.loc[rec.curve["eval_set"] == "subset", "p_at_1"].max())
        for rec in records
        if rec.key["dataset"] == dataset
        and not rec.curve.empty
        and rec.sidecar.get("status") != "failed"
    ]
    level = float(settings.get("headline", 0.9))
    return level_targets(best, [level])[level]


def summarize(records: Sequence[RunRecord], settings: Mapping[str, Any]) -> pd.DataFrame:
    """The summary table: one row per run, in record order (:data:`SUMMARY_COLUMNS`).

    ``target_p_at_1`` is the dataset's headline level (:func:`target_p_at_1`) and
    ``time_to_target_s`` the run's training seconds to it.
    """
    targets = {
        ds: target_p_at_1(records, ds, settings) for ds in {r.key["dataset"] for r in records}
    }
    rows = [summarize_run(rec, targets[rec.key["dataset"]]) for rec in records]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
