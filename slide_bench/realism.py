"""Real data against its synthetic twin, on what decides the benchmark.

For a real dataset and its twin preset (the same sizes and label/feature statistics, e.g.
Bibtex and ``bibtex-like``) the same small experiment runs on both:

- ``tf_full``: P@1 of TensorFlow full softmax after a fixed number of epochs (whole test set);
- ``slide_tables`` / ``slide_uniform``: P@1 of the engine with the output layer's active set
  chosen by the hash tables (the ``topk-count`` policy: the neurons found in the most probed
  buckets, all tables probed with the centred query) or drawn uniformly at random (the
  ``random`` policy), both at the same active budget (``budget_fraction`` of the labels, labels
  included); ``gap`` is tables minus uniform;
- ``recall_top1`` / ``recall_top10`` of both: the share of each evaluation point's hardest
  negatives that its active set holds (the engine's ``sampling_stats``);
- the label/feature statistics of :func:`slide_bench.data.stats.dataset_stats` and
  :func:`slide_bench.data.stats.structure_stats` on the training split.

Every method uses the same optimiser (lazy Adam, ``lr``), batch order and seeds. The result is a
list of tidy rows (dataset, source, metric, seed, value); :func:`format_comparison` prints them
side by side. Command: ``python -m slide_bench.data compare-real --dataset bibtex``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slide_bench.data.repo_zip import read_repo_zip
from slide_bench.data.stats import dataset_stats, structure_stats
from slide_bench.data.synthetic import generate, resolve_spec
from slide_bench.data.xcdata import XCData, shuffle
from slide_bench.errors import ConfigError
from slide_bench.harness import epoch_order, eval_subset
from slide_bench.methods import get_method
from slide_bench.metrics import precision_at_k

__all__ = [
    "TWINS",
    "CompareSettings",
    "compare_real",
    "format_comparison",
    "measure",
    "summarise",
    "write_rows",
]

#: real dataset key -> (its archive under the shared data folder, its twin preset)
TWINS: dict[str, tuple[str, str]] = {"bibtex": ("bibtex/Bibtex.zip", "bibtex-like")}

#: the training metrics of :func:`measure`, in table order
TRAINING_METRICS = (
    "tf_full_p_at_1",
    "slide_tables_p_at_1",
    "slide_uniform_p_at_1",
    "gap_tables_minus_uniform",
    "slide_tables_recall_top1",
    "slide_uniform_recall_top1",
    "slide_tables_recall_top10",
    "slide_uniform_recall_top10",
)


@dataclass
class CompareSettings:
    """The experiment run on the real set and on its twin (defaults: the documented table)."""

    #: passes over the training set, every method (the fixed-epoch comparison)
    epochs: int = 10
    #: lazy Adam step size of every method (the engine's Bibtex tests use 1e-3)
    lr: float = 1e-3
    #: points per step
    batch_size: int = 128
    #: active output neurons per sample as a share of the labels (labels included): small
    #: enough that the choice of negatives decides
    budget_fraction: float = 0.2
    #: SimHash codes per table / tables of the table-chosen run (all tables centred)
    hash_k: int = 6
    hash_l: int = 32
    #: seeds of the model and batch order; each seed is one row per metric
    seeds: tuple[int, ...] = (0, 1)
    #: evaluation subset for the recall columns (the engine's sampling statistics)
    recall_points: int = 1024
    #: threads of every method
    threads: int = 1
    #: twin generator seed
    twin_seed: int = 0

    def budget(self, n_labels: int) -> int:
        """Active neurons per sample for ``n_labels`` labels (at least 2)."""
        return max(2, round(self.budget_fraction * n_labels))


@dataclass
class _Run:
    p_at_1: float
    extra: dict[str, float] = field(default_factory=dict)


def _slide_run(
    train: XCData, test: XCData, settings: CompareSettings, seed: int, policy: str
) -> _Run:
    centred = settings.hash_l if policy != "random" else 0
    hashing = {
        "family": "simhash", "k": settings.hash_k, "l": settings.hash_l, "n_buckets": 1024,
        "policy": policy, "min_active": settings.budget(train.n_labels),
        "rebuild_every_samples": 2560, "center_tables": centred,
    }
    tree = {"lr": settings.lr, "adam": "lazy", "output": {"hash": hashing}}
    net, _ = get_method("slide").plugin().build(tree, seed, settings.threads)
    net.prepare(train)
    for epoch in range(settings.epochs):
        order = epoch_order(train.n_points, seed, epoch)
        for start in range(0, train.n_points, settings.batch_size):
            net.train_batch(order[start : start + settings.batch_size])
    subset = test.take(eval_subset(test.n_points, settings.recall_points, seed))
    sampling = net.sampling_stats(subset, settings.batch_size)
    extra = {f"recall_top{k}": float(sampling[f"recall_top{k}"]) for k in (1, 10)}
    return _Run(net.evaluate(test, ks=(1,))[1], extra)


def _tf_full_run(train: XCData, test: XCData, settings: CompareSettings, seed: int) -> _Run:
    method = get_method("tf-full")
    tree = {**method.overrides(), "lr": settings.lr, "adam": "lazy"}
    # threads 0: TensorFlow keeps its default thread pools (set once per process)
    model, _ = method.plugin().build(tree, seed, 0)
    model.prepare(train)
    model.warmup(epoch_order(train.n_points, seed, 0)[: settings.batch_size])
    for epoch in range(settings.epochs):
        order = epoch_order(train.n_points, seed, epoch)
        for start in range(0, train.n_points, settings.batch_size):
            model.train_batch(order[start : start + settings.batch_size])
    p = precision_at_k(model.predict_topk(test, 1), test.y_indptr, test.y_indices, ks=(1,))
    return _Run(p[1])


def measure(
    train: XCData,
    test: XCData,
    settings: CompareSettings,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[str, int, float]]:
    """Run the experiment on one dataset.

    Parameters
    ----------
    train, test : XCData
        Shuffled splits.
    settings : CompareSettings
    progress : callable, optional
        Called with a short message before each training run.

    Returns
    -------
    list of (metric, seed, value)
        One row per :data:`TRAINING_METRICS` entry and seed, then the statistics (seed -1).
    """
    rows: list[tuple[str, int, float]] = []
    for seed in settings.seeds:
        runs = {}
        for name, run in (
            ("tf_full", lambda s=seed: _tf_full_run(train, test, settings, s)),
            ("slide_tables", lambda s=seed: _slide_run(train, test, settings, s, "topk-count")),
            ("slide_uniform", lambda s=seed: _slide_run(train, test, settings, s, "random")),
        ):
            if progress is not None:
                progress(f"{name} seed {seed}")
            runs[name] = run()
        values = {f"{name}_p_at_1": r.p_at_1 for name, r in runs.items()}
        values["gap_tables_minus_uniform"] = (
            values["slide_tables_p_at_1"] - (values["slide_uniform_p_at_1"])
        )
        for name in ("slide_tables", "slide_uniform"):
            for key, value in runs[name].extra.items():
                values[f"{name}_{key}"] = value
        rows.extend((metric, seed, float(values[metric])) for metric in TRAINING_METRICS)
    stats = {**dataset_stats(train), **structure_stats(train)}
    rows.extend((f"stat_{key}", -1, float(value)) for key, value in stats.items())
    return rows


def compare_real(
    dataset: str = "bibtex",
    data_root: str | os.PathLike[str] = "../shared/data",
    settings: CompareSettings | None = None,
    split: int = 1,
    preset_overrides: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure a real dataset and its twin preset with the same experiment.

    Parameters
    ----------
    dataset : str
        A key of :data:`TWINS`.
    data_root : path-like
        Folder holding the repository archives (``<root>/bibtex/Bibtex.zip``).
    settings : CompareSettings, optional
    split : int
        Split column of the repository zip.
    preset_overrides : dict, optional
        ``key=value`` changes to the twin preset (calibration runs).
    progress : callable, optional
        Called with a short message before each training run.

    Returns
    -------
    list of dict
        Tidy rows: ``dataset``, ``source`` ("real" or "twin"), ``metric``, ``seed`` (-1 for
        statistics), ``value``, ``epochs``, ``lr``, ``budget``, ``preset``, ``git_sha``,
        ``config_hash`` (of the settings and the twin's spec).

    Raises
    ------
    ConfigError
        Unknown dataset; the archive is missing.
    """
    settings = settings or CompareSettings()
    if dataset not in TWINS:
        raise ConfigError(f"no twin preset for {dataset!r}; known: {', '.join(TWINS)}")
    member, preset = TWINS[dataset]
    archive = Path(data_root) / member
    if not archive.is_file():
        raise ConfigError(f"{archive}: the {dataset} archive is missing (see --data-root)")
    real_train, real_test = read_repo_zip(archive, split)
    real_train, real_test = shuffle(real_train, 0), shuffle(real_test, 1)
    spec = resolve_spec(preset, preset_overrides)
    twin_train, twin_test = generate(spec, settings.twin_seed)
    from slide_bench.runlog import provenance

    prov = provenance({"settings": asdict(settings), "twin": asdict(spec)}, settings.threads, "cpu")
    out = []
    for source, (train, test) in (
        ("real", (real_train, real_test)),
        ("twin", (twin_train, twin_test)),
    ):
        tell = None if progress is None else (lambda m, s=source: progress(f"{s}: {m}"))
        for metric, seed, value in measure(train, test, settings, tell):
            out.append({
                "dataset": dataset, "source": source, "metric": metric, "seed": seed,
                "value": value, "epochs": settings.epochs, "lr": settings.lr,
                "budget": settings.budget(train.n_labels), "preset": preset,
                "git_sha": prov["git_sha"], "config_hash": prov["config_hash"],
            })  # fmt: skip
    return out


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean over seeds of every metric: ``{source: {metric: value}}``."""
    sums: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        sums.setdefault(row["source"], {}).setdefault(row["metric"], []).append(row["value"])
    return {
        source: {metric: float(np.mean(v)) for metric, v in metrics.items()}
        for source, metrics in sums.items()
    }


def format_comparison(rows: Sequence[dict[str, Any]]) -> str:
    """The real and twin columns side by side (means over seeds), with their difference."""
    table = summarise(rows)
    real, twin = table.get("real", {}), table.get("twin", {})
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    width = max(len(m) for m in metrics) if metrics else 6
    lines = [f"{'':<{width}}  {'real':>12}  {'twin':>12}  {'twin-real':>10}"]
    for metric in metrics:
        a, b = real.get(metric, float("nan")), twin.get(metric, float("nan"))
        lines.append(f"{metric:<{width}}  {a:>12,.4g}  {b:>12,.4g}  {b - a:>10,.3g}")
    return "\n".join(lines)


def write_rows(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write the tidy rows as CSV (header from the first row), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["metric"])
        writer.writeheader()
        writer.writerows(rows)
