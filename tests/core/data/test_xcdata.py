"""XCData invariants (validate) and row gathering (take) against dense NumPy references."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from slide_bench.data import XCData, generate
from slide_bench.errors import DataFormatError


def dense_x(data: XCData) -> np.ndarray:
    rows = np.repeat(np.arange(data.n_points), np.diff(data.x_indptr))
    out = np.zeros((data.n_points, data.n_features), dtype=np.float32)
    out[rows, data.x_indices] = data.x_values
    return out


def dense_y(data: XCData) -> np.ndarray:
    rows = np.repeat(np.arange(data.n_points), np.diff(data.y_indptr))
    out = np.zeros((data.n_points, data.n_labels), dtype=bool)
    out[rows, data.y_indices] = True
    return out


@pytest.fixture(scope="module")
def small() -> XCData:
    return generate("tiny", seed=2)[1]


def test_take_matches_dense_rows(small: XCData) -> None:
    rows = np.random.default_rng(0).integers(0, small.n_points, size=700)  # with repeats
    got = small.take(rows)
    got.validate()
    np.testing.assert_array_equal(dense_x(got), dense_x(small)[rows])
    np.testing.assert_array_equal(dense_y(got), dense_y(small)[rows])
    assert small.take(np.array([], dtype=np.int64)).n_points == 0
    with pytest.raises(IndexError):
        small.take(np.array([small.n_points]))


def test_validate_accepts_empty_rows_and_descending_ids_across_rows() -> None:
    data = XCData(
        np.array([0, 2, 2, 3], dtype=np.int64),
        np.array([3, 4, 0], dtype=np.int32),  # 4 -> 0 crosses a row boundary: fine
        np.ones(3, dtype=np.float32),
        np.array([0, 0, 1, 1], dtype=np.int64),
        np.array([1], dtype=np.int32),
        5,
        2,
    )
    data.validate()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x_indices": np.array([4, 3, 0], dtype=np.int32)}, "feature ids are not strictly"),
        ({"x_indices": np.array([3, 3, 0], dtype=np.int32)}, "feature ids are not strictly"),
        ({"x_values": np.array([1, np.nan, 1], dtype=np.float32)}, "non-finite"),
        ({"y_indices": np.array([2], dtype=np.int32)}, r"label id out of range \[0, 2\)"),
        ({"x_indptr": np.array([0, 2, 1, 3], dtype=np.int64)}, "not a valid CSR indptr"),
        ({"y_indptr": np.array([0, 1], dtype=np.int64)}, "n \\+ 1"),
        ({"x_indices": np.array([3, 4, 0], dtype=np.int64)}, "x_indices must be a 1-d int32"),
    ],
)
def test_validate_rejects(change: dict, message: str) -> None:
    good = XCData(
        np.array([0, 2, 2, 3], dtype=np.int64),
        np.array([3, 4, 0], dtype=np.int32),
        np.ones(3, dtype=np.float32),
        np.array([0, 0, 1, 1], dtype=np.int64),
        np.array([1], dtype=np.int32),
        5,
        2,
    )
    with pytest.raises(DataFormatError, match=message):
        dataclasses.replace(good, **change).validate("cache.npz")
