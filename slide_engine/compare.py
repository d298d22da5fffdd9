"""Fixed-schedule SLIDE against MONGOOSE: same data, batches, evaluation and clock.

Each method is trained by the shared harness (:func:`slide_bench.harness.run`), so the curves
are the suite's usual CSVs. The summary counts table maintenance over the whole run (full
rebuilds, including the fixed schedule's redraws; re-insertions; scheduler checks; hash fits)
next to the final full-test-set P@1.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from slide_bench.data import XCData
from slide_bench.errors import ConfigError
from slide_bench.harness import RunSettings, run
from slide_bench.methods import METHODS as REGISTRY
from slide_bench.methods import method_names
from slide_engine.engine import SlideConfig, SlideNetwork
from slide_engine.mongoose.config import MongooseConfig

#: The methods compared: the registry's MONGOOSE comparison.
METHODS = method_names("mongoose")


def make_model(
    method: str, config: SlideConfig, mongoose: MongooseConfig, seed: int, threads: int
) -> SlideNetwork:
    """The network of one method.

    Parameters
    ----------
    method : {"slide", "slide-mongoose-scheduler", "slide-mongoose"}
        Fixed schedule (the configured ``output.hash.schedule``), or the engine's ``mongoose``
        schedule on the output layer without / with the learnable hash.
    config : SlideConfig
        Engine settings shared by all methods.
    mongoose : MongooseConfig
        Scheduler settings of the two MONGOOSE methods (``learn`` is set from ``method``).
    seed, threads : int

    Returns
    -------
    SlideNetwork
        Its curve name (set by the engine from the schedule) is ``method``.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {METHODS}")
    registered = REGISTRY[method].settings
    if registered.get("output.hash.schedule") == "mongoose":
        settings = replace(mongoose, learn=bool(registered["output.hash.mongoose.learn"]))
        hashing = replace(config.output.hash, schedule="mongoose", mongoose=settings)
        config = replace(config, output=replace(config.output, hash=hashing))
    return SlideNetwork(config, seed=seed, threads=threads)


def summarize(method: str, curve: list[dict[str, object]], train_seconds: float) -> dict:
    """Totals of one run's curve rows (per-interval maintenance columns are summed).

    Parameters
    ----------
    method : str
    curve : list of dict
        The harness's rows (``eval_set`` ``subset`` during training, ``full`` last).
    train_seconds : float

    Returns
    -------
    dict
        method, iterations, train_seconds, rebuilds, reinserts, checks, fits, t_tables, t_sched,
        t_fit, p_at_1 (final, full test set unless ``final_eval_points`` limits it) and
        p_at_1_subset_best.
    """

    def total(key: str) -> float:
        return float(sum(float(row.get(key) or 0.0) for row in curve))

    final = curve[-1]
    subset = [float(row["p_at_1"]) for row in curve if row["eval_set"] == "subset"]
    return {
        "method": method,
        "iterations": int(final["iteration"]),
        "train_seconds": train_seconds,
        **{key: total(key) for key in ("rebuilds", "reinserts", "checks", "fits")},
        **{key: total(key) for key in ("t_tables", "t_sched", "t_fit")},
        "p_at_1": float(final["p_at_1"]),
        "p_at_1_subset_best": max(subset, default=float("nan")),
    }


def compare(
    train: XCData,
    test: XCData,
    methods: list[str],
    config: SlideConfig,
    mongoose: MongooseConfig,
    settings: RunSettings,
    out_dir: Path,
) -> list[dict]:
    """Train every method with identical settings; write curves and ``summary.json``.

    Parameters
    ----------
    train, test : XCData
        Shuffled splits.
    methods : list of str
        Subset of :data:`METHODS`.
    config : SlideConfig
    mongoose : MongooseConfig
    settings : RunSettings
        Shared run settings (batch order, evaluation, budget, seed, threads).
    out_dir : Path
        Receives ``<method>.csv`` (+ ``.json`` sidecar) and ``summary.json``.

    Returns
    -------
    list of dict
        One :func:`summarize` row per method.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in methods:
        model = make_model(method, config, mongoose, settings.seed, settings.threads)
        record = {**asdict(model.config), "method": method}
        result = run(model, train, test, settings, out_dir / f"{method}.csv", record)
        rows.append(summarize(method, result.curve, result.train_seconds))
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows
