"""Summary statistics of a dataset (the repository's table columns plus label-frequency shape)."""

from __future__ import annotations

import numpy as np

from slide_engine.data.xcdata import XCData

_QUANTILES = (0.5, 0.9, 0.99)


def dataset_stats(data: XCData) -> dict[str, float]:
    """Sizes, per-point averages and the shape of the label frequencies.

    Parameters
    ----------
    data : XCData

    Returns
    -------
    dict
        ``points``, ``features`` (D), ``labels`` (L), ``labels_per_point``,
        ``features_per_point``, ``points_per_label`` (label entries / L, the repository's
        definition), ``points_per_label_q50/q90/q99/max`` (over all L labels),
        ``labels_unused`` (labels with no point) and ``points_without_labels``.
    """
    n = max(data.n_points, 1)
    y_counts = np.diff(data.y_indptr)
    per_label = np.bincount(data.y_indices, minlength=data.n_labels)
    stats: dict[str, float] = {
        "points": data.n_points,
        "features": data.n_features,
        "labels": data.n_labels,
        "labels_per_point": data.y_indices.size / n,
        "features_per_point": data.x_indices.size / n,
        "points_per_label": data.y_indices.size / max(data.n_labels, 1),
    }
    for q in _QUANTILES:
        value = np.quantile(per_label, q) if per_label.size else 0.0
        stats[f"points_per_label_q{round(q * 100)}"] = float(value)
    stats["points_per_label_max"] = int(per_label.max()) if per_label.size else 0
    stats["labels_unused"] = int(np.count_nonzero(per_label == 0))
    stats["points_without_labels"] = int(np.count_nonzero(y_counts == 0))
    return stats


def format_stats_table(columns: dict[str, dict[str, float]]) -> str:
    """Render several :func:`dataset_stats` results side by side (one column per dataset)."""
    names = list(columns)
    keys = list(next(iter(columns.values()))) if columns else []

    def cell(v: float) -> str:
        return f"{v:,}" if isinstance(v, int) else f"{v:,.2f}"

    width = max([len(k) for k in keys] + [0])
    widths = [max(len(name), *(len(cell(columns[name][k])) for k in keys)) for name in names]
    lines = [" " * width + "".join(f"  {name:>{w}}" for name, w in zip(names, widths, strict=True))]
    for k in keys:
        cells = "".join(f"  {cell(columns[n][k]):>{w}}" for n, w in zip(names, widths, strict=True))
        lines.append(f"{k:<{width}}{cells}")
    return "\n".join(lines)
