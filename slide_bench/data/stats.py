"""Summary statistics of a dataset (the repository's table columns plus label-frequency shape)."""

from __future__ import annotations

import numpy as np

from slide_bench.data.xcdata import XCData

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


def structure_stats(data: XCData, max_pairs: int = 50_000_000) -> dict[str, float]:
    """How labels relate to each other and to the features: what makes negatives hard.

    Parameters
    ----------
    data : XCData
    max_pairs : int
        Label-pair and centroid statistics are NaN when they would need more than this many
        entries (label pairs over all points, or labels x features for the centroids).

    Returns
    -------
    dict
        ``values_mean`` (1 for binary features), ``labels_per_point_cv`` and
        ``features_per_point_cv`` (std / mean over points), ``feature_df_q50/q90/max`` (share of
        points holding a feature), ``label_pairs_cooccurring`` (share of the L(L-1)/2 label
        pairs that share a point), ``cooccurrence_top5_share`` (mean over labels of the share of
        its co-occurrences that fall on its 5 most frequent partners: topical structure),
        ``nearest_label_cosine`` (mean over labels of the largest cosine between its feature
        centroid and another label's: how confusable labels are).
    """
    n = max(data.n_points, 1)
    y_counts = np.diff(data.y_indptr).astype(np.float64)
    x_counts = np.diff(data.x_indptr).astype(np.float64)
    df = np.bincount(data.x_indices, minlength=data.n_features) / n
    stats: dict[str, float] = {
        "values_mean": float(data.x_values.mean()) if data.x_values.size else 0.0,
        "labels_per_point_cv": float(y_counts.std() / max(y_counts.mean(), 1e-12)),
        "features_per_point_cv": float(x_counts.std() / max(x_counts.mean(), 1e-12)),
        "feature_df_q50": float(np.quantile(df, 0.5)) if df.size else 0.0,
        "feature_df_q90": float(np.quantile(df, 0.9)) if df.size else 0.0,
        "feature_df_max": float(df.max()) if df.size else 0.0,
    }
    stats.update(_cooccurrence(data, max_pairs))
    stats["nearest_label_cosine"] = _nearest_label_cosine(data, max_pairs)
    return stats


def _cooccurrence(data: XCData, max_pairs: int) -> dict[str, float]:
    nan = {"label_pairs_cooccurring": float("nan"), "cooccurrence_top5_share": float("nan")}
    k = np.diff(data.y_indptr)
    if int((k * (k - 1)).sum()) > max_pairs or data.n_labels < 2:
        return nan
    firsts, seconds = [], []
    for size in np.unique(k[k >= 2]):  # all ordered pairs of the points with `size` labels
        rows = np.flatnonzero(k == size)
        labels = data.y_indices[data.y_indptr[rows][:, None] + np.arange(size)]
        i, j = np.nonzero(~np.eye(size, dtype=bool))
        firsts.append(labels[:, i].ravel())
        seconds.append(labels[:, j].ravel())
    if not firsts:
        return nan
    keys = np.concatenate(firsts).astype(np.int64) * data.n_labels + np.concatenate(seconds)
    pairs, counts = np.unique(keys, return_counts=True)
    owner = pairs // data.n_labels
    n_pairs = data.n_labels * (data.n_labels - 1)
    shares = []
    starts = np.searchsorted(owner, np.unique(owner))
    for start, stop in zip(starts, [*starts[1:], owner.size], strict=True):
        c = np.sort(counts[start:stop])[::-1]
        shares.append(c[:5].sum() / c.sum())
    return {
        "label_pairs_cooccurring": pairs.size / n_pairs,
        "cooccurrence_top5_share": float(np.mean(shares)),
    }


def _nearest_label_cosine(data: XCData, max_entries: int) -> float:
    if data.n_labels * data.n_features > max_entries or data.n_labels < 2:
        return float("nan")
    centroids = np.zeros((data.n_labels, data.n_features), dtype=np.float64)
    point_of_label = np.repeat(np.arange(data.n_points), np.diff(data.y_indptr))
    for point, label in zip(point_of_label, data.y_indices, strict=True):
        lo, hi = data.x_indptr[point], data.x_indptr[point + 1]
        centroids[label, data.x_indices[lo:hi]] += data.x_values[lo:hi]
    norms = np.linalg.norm(centroids, axis=1)
    used = norms > 0
    c = centroids[used] / norms[used, None]
    if c.shape[0] < 2:
        return float("nan")
    sims = c @ c.T
    np.fill_diagonal(sims, -np.inf)
    return float(sims.max(axis=1).mean())


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
