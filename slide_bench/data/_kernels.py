"""Numba kernels over CSR arrays (row gather) shared by the data modules."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _gather_kernel(
    indptr: np.ndarray, rows: np.ndarray, out_indptr: np.ndarray, src: np.ndarray, dst: np.ndarray
) -> None:
    for i in range(rows.shape[0]):
        start = indptr[rows[i]]
        stop = indptr[rows[i] + 1]
        pos = out_indptr[i]
        for j in range(stop - start):
            dst[pos + j] = src[start + j]


def gather_rows(
    indptr: np.ndarray, rows: np.ndarray, arrays: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Gather CSR rows.

    Parameters
    ----------
    indptr : ndarray of int64, shape (n + 1,)
        Row pointers of the source.
    rows : ndarray of int64, shape (m,)
        Rows to take, in order (validated by the caller).
    arrays : tuple of ndarray, each shape (nnz,)
        Per-entry arrays sharing ``indptr`` (e.g. indices and values).

    Returns
    -------
    out_indptr : ndarray of int64, shape (m + 1,)
    out_arrays : tuple of ndarray, each shape (out_indptr[-1],), same dtypes as ``arrays``
    """
    lengths = indptr[rows + 1] - indptr[rows]
    out_indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_indptr[1:])
    outs = []
    for src in arrays:
        dst = np.empty(int(out_indptr[-1]), dtype=src.dtype)
        _gather_kernel(indptr, rows, out_indptr, src, dst)
        outs.append(dst)
    return out_indptr, tuple(outs)
