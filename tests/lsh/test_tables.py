"""Compact tables: capacity, FIFO and reservoir replacement, incremental re-insertion, memory."""

import numba
import numpy as np
import pytest

from slide_engine.lsh import (
    LSHIndex,
    allocate_tables,
    build_tables,
    hash_rows,
    make_hash_functions,
    reinsert,
    table_coverage,
    tables_nbytes,
)
from slide_engine.lsh.rng import make_states


def _contents(tables, t, b):
    s = tables.start[t, b]
    return tables.ids[t, s: s + tables.size[t, b]]


def _check_invariants(tables):
    n_tables, n = tables.bucket_of.shape
    for t in range(n_tables):
        counts = np.bincount(tables.bucket_of[t], minlength=tables.start.shape[1])
        np.testing.assert_array_equal(counts, tables.members[t])
        assert (tables.size[t] <= tables.capacity).all()
        assert (tables.size[t] <= tables.seg_cap[t]).all()
        seen = np.zeros(n, dtype=bool)
        for b in np.flatnonzero(tables.size[t]):
            ids = _contents(tables, t, b)
            assert (tables.bucket_of[t, ids] == b).all()
            assert not seen[ids].any()
            seen[ids] = True


def test_fifo_build_keeps_the_last_inserted_in_order():
    n, n_buckets, cap = 1000, 4, 16
    tables = allocate_tables(n, 1, n_buckets, capacity=cap, replacement="fifo",
                             order="ascending")
    tables.bucket_of[0] = np.arange(n) % n_buckets
    build_tables(tables)
    for b in range(n_buckets):
        members = np.flatnonzero(np.arange(n) % n_buckets == b)
        np.testing.assert_array_equal(_contents(tables, 0, b), members[-cap:])
    np.testing.assert_array_equal(tables.size[0], np.full(n_buckets, cap))
    _check_invariants(tables)


def test_buckets_below_capacity_keep_everyone():
    tables = allocate_tables(10, 1, 8, capacity=128, order="ascending")
    tables.bucket_of[0] = [3, 3, 1, 7, 3, 1, 0, 0, 3, 7]
    build_tables(tables)
    np.testing.assert_array_equal(_contents(tables, 0, 3), [0, 1, 4, 8])
    np.testing.assert_array_equal(tables.size[0], [2, 2, 0, 4, 0, 0, 0, 2])
    assert tables.tail[0] == 10


def test_reservoir_build_is_a_uniform_subset():
    # 2,000 tables, each putting 200 neurons in one bucket of capacity 20: every neuron should be
    # kept 200 times in expectation. Pearson chi-square over the 200 neurons (199 dof: mean 199,
    # sd 20) must stay below mean + 5 sd.
    n, cap, n_tables = 200, 20, 2000
    tables = allocate_tables(n, n_tables, 1, capacity=cap, replacement="reservoir",
                             rng_states=make_states(123, n_tables))
    build_tables(tables)
    kept = np.zeros(n)
    for t in range(n_tables):
        ids = _contents(tables, t, 0)
        assert ids.size == cap and np.unique(ids).size == cap
        kept[ids] += 1
    expected = n_tables * cap / n
    chi2 = ((kept - expected) ** 2 / expected).sum()
    assert chi2 < 199 + 5 * np.sqrt(2 * 199)
    # No insertion-order bias: the first and last halves are kept equally often (within 4 sd).
    assert abs(kept[:100].sum() - kept[100:].sum()) < 4 * np.sqrt(n_tables * cap)


def _fifo_one_bucket(order, n=200, cap=20, n_tables=2000, seed=123):
    tables = allocate_tables(n, n_tables, 1, capacity=cap, replacement="fifo",
                             rng_states=make_states(seed, n_tables), order=order)
    build_tables(tables)
    return np.stack([_contents(tables, t, 0) for t in range(n_tables)])


def test_fifo_build_in_random_order_keeps_an_unbiased_subset():
    # 2,000 tables, 200 neurons in one bucket of capacity 20 each. Ascending insertion keeps the
    # 20 highest ids in every table; a random insertion order keeps each neuron with probability
    # cap / n = 0.1: Pearson chi-square over the 200 neurons (199 dof) below mean + 5 sd, and the
    # low and high halves kept equally often (within 4 sd).
    n, cap, n_tables = 200, 20, 2000
    ascending = _fifo_one_bucket("ascending")
    assert (np.sort(ascending, axis=1) == np.arange(n - cap, n)).all()
    kept_ids = _fifo_one_bucket("random")
    assert all(np.unique(row).size == cap for row in kept_ids)
    kept = np.bincount(kept_ids.ravel(), minlength=n)
    expected = n_tables * cap / n
    chi2 = ((kept - expected) ** 2 / expected).sum()
    assert chi2 < 199 + 5 * np.sqrt(2 * 199)
    assert abs(kept[:100].sum() - kept[100:].sum()) < 4 * np.sqrt(n_tables * cap)
    # the median kept id is the population's (99.5), not the ascending order's 189.5
    assert abs(np.median(kept_ids) - 99.5) < 10


def test_random_insertion_order_is_fresh_per_table_and_per_build():
    tables = allocate_tables(200, 2, 1, capacity=20, rng_states=make_states(5, 2))
    build_tables(tables)
    first = [set(_contents(tables, t, 0)) for t in range(2)]
    build_tables(tables)
    second = [set(_contents(tables, t, 0)) for t in range(2)]
    assert first[0] != first[1]  # per table
    assert first[0] != second[0] and first[1] != second[1]  # per build


def _coverage_oracle(tables):
    stored = set()
    for t in range(tables.ids.shape[0]):
        for b in np.flatnonzero(tables.size[t]):
            stored.update(_contents(tables, t, b).tolist())
    return len(stored) / tables.bucket_of.shape[1]


@pytest.mark.parametrize("order", ["random", "ascending"])
def test_table_coverage_against_a_set_oracle_and_theory(order):
    # 20,000 neurons over 10 buckets of capacity 200 per table: a table keeps ~10 % of them.
    # Random order: a neuron is in none of 8 tables with probability ~0.9**8, coverage ~0.57;
    # ascending: every table keeps the top ~10 % of the ids again, coverage ~0.11.
    n, n_buckets, cap, n_tables = 20_000, 10, 200, 8
    tables = allocate_tables(n, n_tables, n_buckets, capacity=cap,
                             rng_states=make_states(1, n_tables), order=order)
    tables.bucket_of[:] = np.random.default_rng(2).integers(0, n_buckets, (n_tables, n))
    build_tables(tables)
    cov = table_coverage(tables)
    assert cov == pytest.approx(_coverage_oracle(tables), abs=1e-12)
    if order == "random":
        assert cov == pytest.approx(1 - (1 - n_buckets * cap / n) ** n_tables, abs=0.02)
    else:
        assert cov < 0.15


def _build_with_threads(threads: int, **options):
    """Tables of 5,000 neurons in 8 x 16 buckets (capacity 32), built at ``threads`` threads."""
    tables = allocate_tables(5000, 8, 16, capacity=32, rng_states=make_states(9, 8), **options)
    tables.bucket_of[:] = np.random.default_rng(0).integers(0, 16, (8, 5000))
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        build_tables(tables)
    finally:
        numba.set_num_threads(old)
    return tables


@pytest.mark.parametrize("order", ["random", "ascending"])
def test_fifo_build_is_deterministic_across_thread_counts(order):
    a = _build_with_threads(1, order=order)
    b = _build_with_threads(min(2, numba.config.NUMBA_NUM_THREADS), order=order)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.size, b.size)


def test_reservoir_build_is_deterministic_across_thread_counts():
    a = _build_with_threads(1, replacement="reservoir")
    b = _build_with_threads(min(2, numba.config.NUMBA_NUM_THREADS), replacement="reservoir")
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.start, b.start)


def _index(family="dwta", capacity=100_000, replacement="fifo", seed=3):
    return LSHIndex(3000, 32, family=family, k=2, l=8, n_buckets=64, capacity=capacity,
                    replacement=replacement, seed=seed)


def _moved_weights(seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3000, 32)).astype(np.float32)
    w2 = w.copy()
    rows = rng.choice(3000, 600, replace=False).astype(np.int32)
    w2[rows] = rng.standard_normal((600, 32)).astype(np.float32)
    return w, w2, rows


@pytest.mark.slow
@pytest.mark.parametrize("family", ["simhash", "dwta"])
def test_incremental_reinsert_equals_full_rebuild(family):
    w, w2, rows = _moved_weights()
    inc = _index(family)
    inc.build(w)
    inc.reinsert(w2, rows)
    full = _index(family)
    full.build(w2)
    np.testing.assert_array_equal(inc.tables.bucket_of, full.tables.bucket_of)
    before = _index(family)
    before.build(w)
    assert (before.tables.bucket_of[:, rows] != full.tables.bucket_of[:, rows]).sum() > 100
    for t in range(8):
        for b in range(full.hash_functions.n_buckets):
            a = _contents(inc.tables, t, b)
            np.testing.assert_array_equal(np.sort(a), np.sort(_contents(full.tables, t, b)))
    _check_invariants(inc.tables)


def test_reinsert_with_tight_pool_compacts_and_stays_exact():
    w, w2, rows = _moved_weights(1)
    hf = make_hash_functions("dwta", 32, 2, 8, 64, seed=3)
    all_rows = np.arange(3000, dtype=np.int32)

    def tables_for(weights):
        tables = allocate_tables(3000, 8, hf.n_buckets, capacity=5000, slack=5000)
        hash_rows(hf, weights, all_rows, tables.bucket_of)
        build_tables(tables)
        return tables

    inc = tables_for(w)
    new = np.empty((8, rows.size), dtype=np.int32)
    hash_rows(hf, w2, rows, new)
    for part in np.array_split(np.arange(rows.size), 6):  # several calls, the pool wraps
        reinsert(inc, rows[part], np.ascontiguousarray(new[:, part]))
    full = tables_for(w2)
    for t in range(8):
        for b in range(hf.n_buckets):
            np.testing.assert_array_equal(np.sort(_contents(inc, t, b)),
                                          np.sort(_contents(full, t, b)))
    _check_invariants(inc)


@pytest.mark.parametrize("replacement", ["fifo", "reservoir"])
def test_reinsert_under_binding_capacity_keeps_invariants(replacement):
    w, w2, rows = _moved_weights(2)
    idx = _index(capacity=8, replacement=replacement)
    idx.build(w)
    before = idx.tables.bucket_of.copy()
    idx.reinsert(w2, rows)
    _check_invariants(idx.tables)
    if replacement == "fifo":
        # The newest arrival of a bucket is always stored; so is every moved neuron that is among
        # the last ``capacity`` arrivals of its new bucket (rows are processed in order).
        for t in range(8):
            changed = rows[before[t, rows] != idx.tables.bucket_of[t, rows]]
            for b in np.unique(idx.tables.bucket_of[t, changed]):
                arrivals = changed[idx.tables.bucket_of[t, changed] == b]
                np.testing.assert_array_equal(_contents(idx.tables, t, b)[-min(8, arrivals.size):],
                                              arrivals[-8:])


def test_reinsert_validates_rows():
    w, _, _ = _moved_weights()
    idx = _index()
    idx.build(w)
    with pytest.raises(ValueError, match="distinct"):
        idx.reinsert(w, np.array([1, 1], dtype=np.int32))
    with pytest.raises(ValueError, match="neuron ids"):
        idx.reinsert(w, np.array([3000], dtype=np.int32))
    with pytest.raises(ValueError, match="float32"):
        idx.build(w.astype(np.float64))


def test_memory_at_amazon_shape_is_far_below_the_reference():
    # 670,091 neurons, 50 tables, 2**18 buckets, capacity 128: the reference preallocates
    # 50 * 2**18 * 128 * 4 bytes = 6.7 GB. np.zeros maps lazily, so this allocates nothing.
    tables = allocate_tables(670_091, 50, 2**18, capacity=128)
    nbytes = tables_nbytes(tables)
    assert nbytes < 0.6e9
    assert nbytes < 50 * 2**18 * 128 * 4 / 10


def test_reinsert_is_deterministic_across_thread_counts():
    w, w2, rows = _moved_weights(3)
    results = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        idx = LSHIndex(3000, 32, family="dwta", k=2, l=8, n_buckets=64, capacity=8,
                       replacement="reservoir", seed=4, n_threads=threads)
        idx.build(w)
        idx.reinsert(w2, rows)
        results.append(idx.tables)
    for a, b in zip(*results, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_redraw_equals_a_fresh_index_with_the_new_seed():
    w, _, _ = _moved_weights(4)
    idx = _index(seed=1)
    idx.build(w)
    before = idx.tables.bucket_of.copy()
    idx.redraw(w, seed=2)
    fresh = _index(seed=2)
    fresh.build(w)
    np.testing.assert_array_equal(idx.tables.bucket_of, fresh.tables.bucket_of)
    np.testing.assert_array_equal(idx.tables.ids, fresh.tables.ids)
    assert (idx.tables.bucket_of != before).mean() > 0.5
