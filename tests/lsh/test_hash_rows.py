"""Oracle tests of kernels rewritten for speed by the benchmark owner (docs/performance.md)."""

from __future__ import annotations

import numpy as np
import pytest

from slide_engine.lsh import hash_dense, hash_rows, hash_scratch_sizes, make_hash_functions


@pytest.mark.parametrize("packing", ["concat", "reference-overlap-2bit"])
@pytest.mark.parametrize(("k", "l", "n_buckets"),
                         [(9, 50, 2**18), (6, 7, 1000), (1, 3, 2), (12, 5, 1000)])
def test_simhash_rows_by_blas_equal_the_per_row_kernel(packing, k, l, n_buckets) -> None:  # noqa: E741
    rng = np.random.default_rng(k * 100 + l)
    n, dim = 20_000, 128  # > one BLAS chunk (16,384 rows): exercises the chunk boundary
    weights = rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.01)
    hf = make_hash_functions("simhash", dim, k, l, n_buckets, seed=3, packing=packing)
    rows = rng.permutation(n).astype(np.int32)  # any row order, as a re-insert passes
    out = np.empty((l, n), dtype=np.int32)
    hash_rows(hf, weights, rows, out)
    n_float, n_int = hash_scratch_sizes(hf)
    fbuf = np.empty(n_float, np.float32)
    codes = np.empty(n_int, np.int32)
    buckets = np.empty(l, np.int32)
    for r in rng.choice(n, 500, replace=False):
        hash_dense(hf, weights[rows[r]], fbuf, codes, buckets)
        np.testing.assert_array_equal(out[:, r], buckets)
    assert out.min() >= 0 and out.max() < hf.n_buckets
    # float64 oracle of every code: sign of x . p, packed as documented
    z = weights[rows].astype(np.float64) @ hf.proj.astype(np.float64)
    bits = (z > 0).reshape(n, l, k).astype(np.uint64)
    shift = np.uint64(1 if packing == "concat" else 2)
    expect = np.zeros((n, l), dtype=np.uint64)
    for j in range(k):
        expect = (expect << shift) + bits[:, :, j]
    if hf.fold:  # splitmix64's finaliser of the packed value, high 32 bits scaled to the range
        with np.errstate(over="ignore"):
            h = expect ^ np.uint64(0xD6E8FEB86659FD93)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = (h ^ (h >> np.uint64(31))) >> np.uint64(32)
            expect = (h * np.uint64(hf.n_buckets)) >> np.uint64(32)
    else:
        assert expect.max() < hf.n_buckets
    near_zero = (np.abs(z) < 1e-6).reshape(n, l, k).any(axis=2)
    agree = (out.T == expect.astype(np.int64)) | near_zero
    assert agree.all()
