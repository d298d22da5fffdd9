"""Inner-product (MIPS) SimHash: Neyshabur & Srebro's simple LSH over neurons ``[w, b]``.

Oracles:

- Codes: NumPy SimHash (float64) of the explicitly transformed vectors
  ``P(x) = [w, b, sqrt(M^2 - |x|^2)]`` and ``Q = [h, 1, 0]``, bucket for bucket, for the BLAS
  and the per-row paths, a full build (M = the largest norm), an incremental rebuild (M kept, a
  neuron grown past M gets the extra coordinate 0) and a redraw. Where a float64 projection
  lies within 1e-4 of zero the float32 sum may take the other sign; those are excluded and
  must be rare.
- Collisions: with K = 1 and many tables, a neuron's collision rate with a query estimates
  ``1 - theta / pi`` (theta: the angle between the transformed vectors; the sparse +-1
  weight projections make it approximate, checked within 0.04 on 3,000 tables, the sampling sd
  being <= 0.009; the bias and extra coordinates, single coordinates that can hold most of the
  norm, get Gaussian projections: with sparse +-1 ones the rates follow the angle instead).
  On neurons built so that the order by inner product is the reverse of the order by angle,
  the MIPS collision rates rank them by inner product and plain SimHash's by angle.
"""

from __future__ import annotations

import numpy as np
import pytest

from slide_engine.lsh import (
    LSHIndex,
    hash_dense,
    hash_dense_mips,
    hash_rows_mips,
    hash_scratch_sizes,
    make_hash_functions,
    mips_norm,
    mips_range_m,
)


def spearman(a: np.ndarray, c: np.ndarray) -> float:
    """Rank correlation (ties broken by position: the tests' values have none that matter)."""
    ra, rc = np.argsort(np.argsort(a)), np.argsort(np.argsort(c))
    return float(np.corrcoef(ra, rc)[0, 1])


def transformed(w: np.ndarray, b: np.ndarray, m: float | np.ndarray) -> np.ndarray:
    x = np.hstack([w, b[:, None]]).astype(np.float64)
    extra = np.sqrt(np.maximum(m * m - (x * x).sum(axis=1), 0.0))
    return np.hstack([x, extra[:, None]])


def projection(hf) -> np.ndarray:
    """The (D + 2, k*l) SimHash projection of the transformed vectors: the weight rows'
    sparse +-1 entries, then the bias's and the extra coordinate's Gaussian entries."""
    if hf.mips_proj.shape[0] == 0:
        return hf.proj.astype(np.float64)
    return np.vstack([hf.proj, hf.mips_proj]).astype(np.float64)


def numpy_buckets(hf, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Buckets (l, n) of float64 vectors (n, D or D + 2) by SimHash with ``hf``'s projections,
    and the projections' distance to zero (l, n): the smallest |projection| among a table's K."""
    z = vectors @ projection(hf)
    bits = (z > 0).astype(np.int64).reshape(len(vectors), hf.l, hf.k)
    weights = 1 << np.arange(hf.k - 1, -1, -1)
    assert not hf.fold  # K bits address fewer than n_buckets: the packed value is the bucket
    margin = np.abs(z).reshape(len(vectors), hf.l, hf.k).min(axis=2)
    return (bits * weights).sum(axis=2).T, margin.T


def assert_buckets_equal(got: np.ndarray, want: np.ndarray, margin: np.ndarray) -> None:
    clear = margin > 1e-4
    assert clear.mean() > 0.98
    assert np.array_equal(got[clear], want[clear])


def neurons(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, d)) * rng.uniform(0.05, 3.0, (n, 1))  # norms over ~2 decades
    b = rng.standard_normal(n) * rng.uniform(0.0, 2.0, n)
    return w.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize("n", [40, 700])  # the per-row kernel, the BLAS path
def test_build_and_query_codes_equal_numpy_simhash_of_the_transform(n):
    d = 24
    w, b = neurons(n, d, 1)
    index = LSHIndex(n, d, family="simhash", k=7, l=9, n_buckets=2**18, mips=True, seed=4)
    assert index.hash_functions.dim == d and index.hash_functions.mips_proj.shape == (2, 63)
    index.build(w, b)
    norms = np.sqrt((w.astype(np.float64) ** 2).sum(axis=1) + b.astype(np.float64) ** 2)
    assert index.mips_m == pytest.approx(norms.max(), rel=1e-12)
    want, margin = numpy_buckets(index.hash_functions, transformed(w, b, index.mips_m))
    assert_buckets_equal(index.tables.bucket_of, want, margin)

    hf = index.hash_functions
    n_float, n_int = hash_scratch_sizes(hf)
    fbuf, codes = np.empty(n_float, np.float32), np.empty(n_int, np.int32)
    rng = np.random.default_rng(2)
    for _ in range(20):
        h = np.maximum(rng.standard_normal(d), 0).astype(np.float32)
        got = np.empty(hf.l, np.int32)
        hash_dense_mips(hf, h, fbuf, codes, got)
        q = np.concatenate([h.astype(np.float64), [1.0, 0.0]])[None, :]
        want_q, margin_q = numpy_buckets(hf, q)
        clear = margin_q[:, 0] > 1e-4
        assert np.array_equal(got[clear], want_q[clear, 0])


def test_incremental_rebuild_keeps_m_and_zeroes_the_extra_coordinate_of_grown_neurons():
    n, d = 300, 16
    w, b = neurons(n, d, 3)
    index = LSHIndex(n, d, family="simhash", k=6, l=8, n_buckets=2**18, mips=True, seed=9)
    index.build(w, b)
    m = index.mips_m
    changed = np.array([3, 50, 51, 299])
    w[changed] *= 2.5  # neuron 3 (at least) grows past M
    b[changed] -= 1.0
    assert mips_norm(w, b, changed) > m
    index.rebuild(w, changed, b)
    assert index.mips_m == m
    p = transformed(w, b, m)
    assert p[changed, -1].min() == 0.0
    want, margin = numpy_buckets(index.hash_functions, p)
    assert_buckets_equal(index.tables.bucket_of, want, margin)
    # a full rebuild (and a redraw) takes M anew
    index.rebuild(w, None, b)
    assert index.mips_m == pytest.approx(mips_norm(w, b)) and index.mips_m > m
    index.redraw(w, 11, b)
    want, margin = numpy_buckets(index.hash_functions, transformed(w, b, index.mips_m))
    assert_buckets_equal(index.tables.bucket_of, want, margin)


def test_norm_ranges_give_each_neuron_its_range_largest_norm():
    n, d, ranges = 403, 12, 5
    w, b = neurons(n, d, 6)
    index = LSHIndex(n, d, family="simhash", k=6, l=8, n_buckets=2**18, mips=True,
                     mips_ranges=ranges, seed=2)
    index.build(w, b)
    norms = np.sqrt((w.astype(np.float64) ** 2).sum(axis=1) + b.astype(np.float64) ** 2)
    order = np.argsort(norms, kind="stable")
    want_m = np.empty(n)
    sizes = [n // ranges + (i < n % ranges) for i in range(ranges)]  # equal sizes, +-1
    at = 0
    for size in sizes:
        group = order[at: at + size]
        want_m[group] = norms[group].max()
        at += size
    assert np.allclose(index.mips_row_m, want_m, rtol=1e-12)
    assert np.unique(index.mips_row_m).size == ranges
    assert np.allclose(mips_range_m(norms, 1), norms.max())
    want, margin = numpy_buckets(index.hash_functions, transformed(w, b, index.mips_row_m))
    assert_buckets_equal(index.tables.bucket_of, want, margin)
    # without ranges the small neurons' transformed vectors crowd together: with them, the
    # tables keep more distinct buckets per table
    one = LSHIndex(n, d, family="simhash", k=6, l=8, n_buckets=2**18, mips=True, seed=2)
    one.build(w, b)
    distinct = [np.unique(ix.tables.bucket_of[t]).size for ix in (one, index) for t in range(8)]
    assert np.mean(distinct[8:]) > np.mean(distinct[:8])


def test_mips_tables_need_simhash_and_the_biases():
    with pytest.raises(ValueError, match="simhash"):
        LSHIndex(10, 4, family="dwta", k=2, l=2, mips=True)
    index = LSHIndex(10, 4, family="simhash", k=2, l=2, mips=True)
    with pytest.raises(ValueError, match="bias"):
        index.build(np.ones((10, 4), np.float32))
    with pytest.raises(ValueError, match="mips_ranges"):
        LSHIndex(10, 4, family="simhash", k=2, l=2, mips=True, mips_ranges=0)
    plain = make_hash_functions("simhash", 4, 2, 2, 64, 0)
    with pytest.raises(ValueError, match="mips=True"):
        hash_rows_mips(plain, np.ones((10, 4), np.float32), np.ones(10, np.float32), 3.0,
                       np.arange(10, dtype=np.int32), np.empty((2, 10), np.int32))


def collision_rates(hf, w, b, m, h, mips: bool) -> np.ndarray:
    # K = 1: each table's bucket is one sign bit
    n = w.shape[0]
    rows = np.arange(n, dtype=np.int32)
    out = np.empty((hf.l, n), np.int32)
    n_float, n_int = hash_scratch_sizes(hf)
    fbuf, codes, q = np.empty(n_float, np.float32), np.empty(n_int, np.int32), np.empty(
        hf.l, np.int32)
    if mips:
        hash_rows_mips(hf, w, b, m, rows, out)
        hash_dense_mips(hf, h, fbuf, codes, q)
    else:
        index = LSHIndex(n, w.shape[1], family="simhash", k=1, l=hf.l, n_buckets=2, seed=0)
        index.hash_functions = hf
        index.build(w)
        out = index.tables.bucket_of
        hash_dense(hf, h, fbuf, codes, q)
    return (out == q[:, None]).mean(axis=0)


def angle(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    cos = a @ c / (np.linalg.norm(a, axis=1) * np.linalg.norm(c))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def test_collision_rate_ranks_by_inner_product_and_plain_simhash_by_angle():
    d, n, tables = 48, 12, 3000
    rng = np.random.default_rng(7)
    h = np.abs(rng.standard_normal(d)).astype(np.float32)
    u = h / np.linalg.norm(h)
    v = rng.standard_normal(d)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    # neuron i: angle phi_i to h growing with i, norm a_i growing faster, so the inner product
    # a_i cos(phi_i) grows with i while the angle does too: the two orders are reversed
    phi = np.linspace(0.15, 1.2, n)
    a = 0.3 * np.exp(np.linspace(0.0, 2.5, n))
    w = (a[:, None] * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v)).astype(np.float32)
    b = np.zeros(n, np.float32)
    ip = w.astype(np.float64) @ h
    assert np.all(np.diff(ip) > 0) and np.all(np.diff(angle(w.astype(np.float64), h)) > 0)

    m = mips_norm(w, b)
    hf_mips = make_hash_functions("simhash", d, 1, tables, 2, 21, mips=True)
    rate = collision_rates(hf_mips, w, b, m, h, mips=True)
    q = np.concatenate([h.astype(np.float64), [1.0, 0.0]])
    theory = 1.0 - angle(transformed(w, b, m), q) / np.pi
    assert np.abs(rate - theory).max() < 0.04
    assert spearman(rate, ip) > 0.95

    hf_plain = make_hash_functions("simhash", d, 1, tables, 2, 21)
    plain = collision_rates(hf_plain, w, b, m, h, mips=False)
    theory_plain = 1.0 - angle(w.astype(np.float64), h) / np.pi
    assert np.abs(plain - theory_plain).max() < 0.04
    assert spearman(plain, ip) < -0.95  # by angle: the reverse of inner product


def test_bias_moves_the_collision_rate_with_the_logit():
    # equal weight rows, biases from -2 to 2: plain SimHash cannot tell them apart (identical
    # codes), the MIPS rate grows with the bias, as the logit w.h + b does
    d, n, tables = 32, 9, 3000
    rng = np.random.default_rng(8)
    h = np.abs(rng.standard_normal(d)).astype(np.float32)
    w = np.repeat(rng.standard_normal((1, d)).astype(np.float32) * 0.3, n, axis=0)
    b = np.linspace(-2.0, 2.0, n).astype(np.float32)
    m = mips_norm(w, b)
    hf = make_hash_functions("simhash", d, 1, tables, 2, 5, mips=True)
    rate = collision_rates(hf, w, b, m, h, mips=True)
    q = np.concatenate([h.astype(np.float64), [1.0, 0.0]])
    theory = 1.0 - angle(transformed(w, b, m), q) / np.pi
    assert np.abs(rate - theory).max() < 0.04
    assert spearman(rate, b) > 0.95
    plain = collision_rates(make_hash_functions("simhash", d, 1, tables, 2, 5), w, b, m, h,
                            mips=False)
    assert np.ptp(plain) == 0.0
