"""Shapes of the real extreme-classification datasets, and synthetic shapes at any label count.

The crossover sweep trains every method on synthetic data at label counts from thousands to
hundreds of thousands. Its other sizes follow the real Extreme Classification Repository sets:
the number of features D, labels per point and points per label of each sweep point are
interpolated between the real sets that bracket its label count, linearly in
(log label count, log statistic). So a point at a real set's label count has that set's shape,
and a point between two sets has their geometric blend.

The figures are the repository's (docs/slide-facts: the dataset table): features, labels,
training and test points, mean labels per point and mean points per label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slide_bench.errors import ConfigError

__all__ = ["XC_SHAPES", "XCShape", "shape_at", "sweep_datasets"]


@dataclass(frozen=True)
class XCShape:
    """Sizes and label statistics of one dataset (a real one, or one interpolated)."""

    name: str
    n_labels: int  # L
    n_features: int  # D
    labels_per_point: float
    points_per_label: float
    n_train: int
    n_test: int


XC_SHAPES: dict[str, XCShape] = {
    s.name: s
    for s in (
        XCShape("Mediamill", 101, 120, 4.38, 1902.15, 30_993, 12_914),
        XCShape("Bibtex", 159, 1_836, 2.40, 111.71, 4_880, 2_515),
        XCShape("EURLex-4K", 3_993, 5_000, 5.31, 25.73, 15_539, 3_809),
        XCShape("AmazonCat-13K", 13_330, 203_882, 5.04, 448.57, 1_186_239, 306_782),
        XCShape("Wiki10-31K", 30_938, 101_938, 18.64, 8.52, 14_146, 6_616),
        XCShape("Delicious-200K", 205_443, 782_585, 75.54, 72.29, 196_606, 100_095),
        XCShape("Amazon-670K", 670_091, 135_909, 5.45, 3.99, 490_449, 153_025),
    )
}


def _anchors(names: Sequence[str]) -> list[XCShape]:
    unknown = [n for n in names if n not in XC_SHAPES]
    if unknown:
        raise ConfigError(
            f"unknown XC dataset {unknown[0]!r} among the anchors; known: {', '.join(XC_SHAPES)}"
        )
    shapes = sorted((XC_SHAPES[n] for n in names), key=lambda s: s.n_labels)
    if not shapes:
        raise ConfigError("the shape interpolation needs at least one anchor dataset")
    return shapes


def shape_at(n_labels: int, anchors: Sequence[str]) -> XCShape:
    """The shape of a dataset with ``n_labels`` labels, interpolated between real XC sets.

    Parameters
    ----------
    n_labels : int
        Label count L of the synthetic dataset (>= 2).
    anchors : sequence of str
        Names in :data:`XC_SHAPES` to interpolate between (any order).

    Returns
    -------
    XCShape
        ``n_features``, ``labels_per_point`` and ``points_per_label`` interpolated linearly in
        (log L, log value) between the two anchors whose label counts bracket ``n_labels`` (the
        nearest anchor's values outside their range); ``n_train`` = points per label x L /
        labels per point (the full size such a set would have) and ``n_test`` a quarter of it,
        roughly the real sets' split. ``name`` is ``"L=<n_labels>"``.
    """
    if n_labels < 2:
        raise ConfigError(f"a sweep point needs at least 2 labels, got {n_labels}")
    shapes = _anchors(anchors)
    x = np.log([s.n_labels for s in shapes])
    at = math.log(n_labels)

    def interp(values: list[float]) -> float:
        return float(np.exp(np.interp(at, x, np.log(values))))

    d = interp([s.n_features for s in shapes])
    lpp = interp([s.labels_per_point for s in shapes])
    ppl = interp([s.points_per_label for s in shapes])
    n_train = max(1, round(ppl * n_labels / lpp))
    return XCShape(
        name=f"L={n_labels}",
        n_labels=int(n_labels),
        n_features=max(1, round(d)),
        labels_per_point=round(lpp, 2),
        points_per_label=round(ppl, 2),
        n_train=n_train,
        n_test=max(1, n_train // 4),
    )


def sweep_datasets(section: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The pipeline's dataset entries of a crossover sweep (the config's ``crossover`` section).

    Parameters
    ----------
    section : mapping
        ``labels`` (label counts, ascending), ``anchors`` (XC set names), ``generator``
        (``preset``, ``seed``, ``params``: the generator's mechanisms; sizes are overridden),
        ``n_train`` / ``n_test`` (points of every sweep point; null: the interpolated full size),
        ``time_budget`` (training seconds of every run at each point, one per label count),
        ``evaluations`` (subset evaluations per run: ``eval_every_s`` = time budget / this) and
        ``prefix`` (dataset names are ``<prefix>-<L>``).

    Returns
    -------
    dict
        Dataset name -> entry with a ``synthetic`` source (preset plus the interpolated sizes as
        ``params``) and a ``budget`` override (``time_budget``, ``eval_every_s``).

    Raises
    ------
    ConfigError
        Label counts not ascending or duplicated, a budget list of another length, an unknown
        anchor.
    """
    labels = [int(v) for v in section["labels"]]
    if labels != sorted(set(labels)):
        raise ConfigError(f"crossover.labels must be strictly ascending, got {labels}")
    budgets = list(section["time_budget"])
    if len(budgets) != len(labels):
        raise ConfigError(
            f"crossover.time_budget has {len(budgets)} entries for {len(labels)} label counts; "
            "give one training-seconds budget per label count"
        )
    generator = section["generator"]
    evaluations = int(section["evaluations"])
    out: dict[str, dict[str, Any]] = {}
    for n_labels, budget in zip(labels, budgets, strict=True):
        shape = shape_at(n_labels, section["anchors"])
        params = {
            **dict(generator.get("params") or {}),
            "n_labels": shape.n_labels,
            "n_features": shape.n_features,
            "labels_per_point": shape.labels_per_point,
            "n_train": shape.n_train if section["n_train"] is None else int(section["n_train"]),
            "n_test": shape.n_test if section["n_test"] is None else int(section["n_test"]),
        }
        out[f"{section['prefix']}-{n_labels}"] = {
            "synthetic": {
                "preset": generator["preset"],
                "seed": int(generator.get("seed", 0)),
                "params": params,
            },
            "budget": {"time_budget": float(budget), "eval_every_s": float(budget) / evaluations},
        }
    return out
