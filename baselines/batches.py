"""Host-side batch preparation: CSR rows of an XC dataset to the flat arrays the TF step takes.

All of it is vectorised NumPy over the batch's non-zeros (tens of microseconds for a batch of 128
Amazon-670K points), so the conversion that runs inside the timed ``train_batch`` is negligible
next to the step itself; ``TFSoftmaxTrainable.stats`` reports the split to prove it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Batch", "dense_label_matrix", "feature_arrays", "gather_csr", "make_batch"]


@dataclass(frozen=True)
class Batch:
    """One mini-batch in the layout of the compiled step.

    Attributes
    ----------
    feat_ids : ndarray of int32, shape (nnz,)
        Feature ids of all points, row after row.
    feat_vals : ndarray of float32, shape (nnz,)
        Their values.
    feat_rows : ndarray of int32, shape (nnz,)
        Row (0..B-1) of each non-zero: segment ids of the first-layer sum.
    labels : ndarray of int32, shape (B, K)
        Labels of each point left-aligned, K = max(1, max labels in the batch); padding repeats
        the row's first label (or 0 for a point without labels) and is masked by ``counts``.
    counts : ndarray of int32, shape (B,)
        Number of labels of each point (0 allowed: such a point contributes zero loss).
    """

    feat_ids: np.ndarray
    feat_vals: np.ndarray
    feat_rows: np.ndarray
    labels: np.ndarray
    counts: np.ndarray


def gather_csr(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of the non-zeros of ``rows`` in a CSR matrix, without a Python loop.

    Parameters
    ----------
    indptr : ndarray of int64, shape (n + 1,)
        CSR row pointers.
    rows : ndarray of int, shape (B,)
        Rows to take, in order.

    Returns
    -------
    pos : ndarray of int64, shape (nnz,)
        Positions into the CSR indices/values arrays, row after row.
    seg : ndarray of int32, shape (nnz,)
        Batch row (0..B-1) of each position.
    lengths : ndarray of int64, shape (B,)
        Non-zeros per row.
    """
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    seg = np.repeat(np.arange(len(rows), dtype=np.int32), lengths)
    offsets = np.cumsum(lengths) - lengths
    pos = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(offsets - starts, lengths)
    return pos, seg, lengths


def feature_arrays(data, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat feature arrays of ``rows`` of an ``XCData``.

    Parameters
    ----------
    data : slide_bench.data.XCData
        The dataset.
    rows : ndarray of int, shape (B,)
        Point indices.

    Returns
    -------
    feat_ids : ndarray of int32, shape (nnz,)
    feat_vals : ndarray of float32, shape (nnz,)
    feat_rows : ndarray of int32, shape (nnz,)
        See :class:`Batch`.
    """
    pos, seg, _ = gather_csr(data.x_indptr, np.asarray(rows, dtype=np.int64))
    return (
        np.ascontiguousarray(data.x_indices[pos], dtype=np.int32),
        np.ascontiguousarray(data.x_values[pos], dtype=np.float32),
        seg,
    )


def make_batch(data, rows: np.ndarray) -> Batch:
    """Build the :class:`Batch` of ``rows`` of an ``XCData``.

    Parameters
    ----------
    data : slide_bench.data.XCData
        The dataset (CSR features and labels).
    rows : ndarray of int, shape (B,)
        Point indices of the batch.

    Returns
    -------
    Batch
    """
    rows = np.asarray(rows, dtype=np.int64)
    feat_ids, feat_vals, feat_rows = feature_arrays(data, rows)
    ypos, yseg, counts = gather_csr(data.y_indptr, rows)
    width = max(1, int(counts.max(initial=0)))
    first = np.zeros(len(rows), dtype=np.int32)
    has = counts > 0
    first[has] = data.y_indices[data.y_indptr[rows[has]]]
    labels = np.repeat(first[:, None], width, axis=1)
    col = np.arange(len(ypos), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    labels[yseg, col] = data.y_indices[ypos]
    return Batch(
        feat_ids=feat_ids,
        feat_vals=feat_vals,
        feat_rows=feat_rows,
        labels=labels,
        counts=counts.astype(np.int32),
    )


def dense_label_matrix(batch: Batch, n_labels: int) -> np.ndarray:
    """The published full-softmax script's label feed: a dense float64 target matrix.

    Built in Python per batch, as the paper's TensorFlow baseline did (686 MB for a batch of 128
    on Amazon-670K). Only used by ``label_feeding=dense-float64`` to show what that trap costs.

    Parameters
    ----------
    batch : Batch
        The batch.
    n_labels : int
        L.

    Returns
    -------
    ndarray of float64, shape (B, L)
        1/|y_i| on each label of point i, zero elsewhere (an all-zero row for a point without
        labels, whose cross-entropy is then zero, as in the sparse form).
    """
    counts = batch.counts
    target = np.zeros((len(counts), n_labels), dtype=np.float64)
    mask = np.arange(batch.labels.shape[1])[None, :] < counts[:, None]
    rows = np.nonzero(mask)[0]
    target[rows, batch.labels[mask]] = 1.0 / counts[rows]
    return target
