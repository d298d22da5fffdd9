"""XCData: the one in-memory multi-label dataset type (CSR features + CSR labels); shuffle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slide_bench.data._kernels import gather_rows
from slide_bench.errors import DataFormatError

_INT32_MAX = np.iinfo(np.int32).max


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare fields explicitly
class XCData:
    """A multi-label dataset in two CSR matrices sharing the row index.

    Attributes
    ----------
    x_indptr : ndarray of int64, shape (n + 1,)
        Feature row pointers.
    x_indices : ndarray of int32, shape (nnz,)
        Feature ids, strictly ascending within a row.
    x_values : ndarray of float32, shape (nnz,)
        Feature values, aligned with ``x_indices``.
    y_indptr : ndarray of int64, shape (n + 1,)
        Label row pointers.
    y_indices : ndarray of int32, shape (nnz_y,)
        Label ids, strictly ascending within a row; a row may be empty.
    n_features, n_labels : int
        D and L (from the file header, or the generator).
    """

    x_indptr: np.ndarray
    x_indices: np.ndarray
    x_values: np.ndarray
    y_indptr: np.ndarray
    y_indices: np.ndarray
    n_features: int
    n_labels: int

    @property
    def n_points(self) -> int:
        """Number of points (rows) n."""
        return int(self.x_indptr.shape[0] - 1)

    def take(self, rows: np.ndarray) -> XCData:
        """Return the points ``rows`` in that order (rows may repeat).

        Parameters
        ----------
        rows : ndarray of int, shape (m,)
            Row numbers in ``[0, n)``.

        Returns
        -------
        XCData
            A new dataset with m points; arrays are copies.
        """
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_points):
            raise IndexError(f"row numbers must be in [0, {self.n_points})")
        x_indptr, (x_indices, x_values) = gather_rows(
            self.x_indptr, rows, (self.x_indices, self.x_values)
        )
        y_indptr, (y_indices,) = gather_rows(self.y_indptr, rows, (self.y_indices,))
        return XCData(
            x_indptr, x_indices, x_values, y_indptr, y_indices, self.n_features, self.n_labels
        )

    def validate(self, source: str = "XCData") -> None:
        """Check every invariant of the table in docs/architecture.md.

        Parameters
        ----------
        source : str
            Name used in the error message (usually the file the data came from).

        Raises
        ------
        DataFormatError
            On the first violated invariant (dtype, shape, pointer, id range, order, finiteness).
        """

        def fail(message: str) -> None:
            raise DataFormatError(source, None, None, message)

        if not (0 <= self.n_features <= _INT32_MAX and 0 <= self.n_labels <= _INT32_MAX):
            fail(f"n_features={self.n_features}, n_labels={self.n_labels} out of int32 range")
        expected = {
            "x_indptr": np.int64,
            "x_indices": np.int32,
            "x_values": np.float32,
            "y_indptr": np.int64,
            "y_indices": np.int32,
        }
        for name, dtype in expected.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1:
                got = getattr(arr, "dtype", type(arr).__name__)
                fail(f"{name} must be a 1-d {np.dtype(dtype).name} array, got {got}")
        if self.y_indptr.shape != self.x_indptr.shape or self.x_indptr.size == 0:
            fail("x_indptr and y_indptr must both have n + 1 >= 1 entries")
        if self.x_values.shape != self.x_indices.shape:
            fail("x_values and x_indices differ in length")
        for kind, indptr, indices, bound in (
            ("feature", self.x_indptr, self.x_indices, self.n_features),
            ("label", self.y_indptr, self.y_indices, self.n_labels),
        ):
            if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
                fail(f"{kind} row pointers are not a valid CSR indptr")
            if indices.size and (indices.min() < 0 or indices.max() >= bound):
                fail(f"{kind} id out of range [0, {bound})")
            steps = np.diff(indices.astype(np.int64))
            row_starts = indptr[1:-1]
            inside = np.ones(steps.size, dtype=bool)
            inside[row_starts[(row_starts > 0) & (row_starts <= steps.size)] - 1] = False
            if np.any(steps[inside] <= 0):
                fail(f"{kind} ids are not strictly ascending within a row")
        if not np.all(np.isfinite(self.x_values)):
            fail("non-finite feature value")


def shuffle(data: XCData, seed: int) -> XCData:
    """Return the points of ``data`` in the order ``default_rng(seed).permutation(n)``.

    The permutation depends only on ``seed`` and n (NumPy's PCG64 stream is the same on every
    platform), so every machine sees the same order.

    Parameters
    ----------
    data : XCData
        n points.
    seed : int
        Non-negative seed.

    Returns
    -------
    XCData
        n points, row i of the result is row ``perm[i]`` of ``data``.
    """
    return data.take(np.random.default_rng(seed).permutation(data.n_points))
