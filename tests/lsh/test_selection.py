"""Active-set policies against NumPy references over the same probed buckets."""

import numpy as np
import pytest

from slide_engine.lsh import (
    LSHIndex,
    hash_dense,
    make_policy,
    out_capacity,
    query_dense,
    select_active,
    start_shared_topup,
)

N, D = 2000, 32
LABELS = np.array([1999, 5, 77], dtype=np.int32)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((N, D)).astype(np.float32)
    index = LSHIndex(N, D, family="dwta", k=3, l=10, n_buckets=512, capacity=32, seed=1)
    index.build(w)
    queries = np.maximum(rng.standard_normal((20, D)), 0).astype(np.float32)
    return index, w, queries


def _probed(index, x):
    """Per-table bucket contents for x, and collision counts (NumPy reference)."""
    hf = index.hash_functions
    scratch = index.make_scratch(1)
    hash_dense(hf, x, scratch.fbuf[0], scratch.codes[0], scratch.buckets[0])
    buckets = [index.bucket(t, b) for t, b in enumerate(scratch.buckets[0])]
    counts = np.bincount(np.concatenate(buckets), minlength=N)
    return buckets, counts


def _check_distinct_labels_first(active, labels=LABELS):
    assert np.unique(active).size == active.size
    np.testing.assert_array_equal(active[: labels.size], labels)


def test_union_is_labels_plus_probed_union_topped_up(setup):
    index, _, queries = setup
    for x in queries:
        _, counts = _probed(index, x)
        union = np.union1d(LABELS, np.flatnonzero(counts))
        no_topup = index.query(x, LABELS, make_policy("union", min_active=0))
        _check_distinct_labels_first(no_topup)
        np.testing.assert_array_equal(np.sort(no_topup), union)
        active = index.query(x, LABELS, make_policy("union", min_active=1000))
        _check_distinct_labels_first(active)
        assert active.size == max(1000, union.size)
        np.testing.assert_array_equal(active[: no_topup.size], no_topup)


def _topups(index, queries, topup, batches=3):
    # per batch: each sample's top-up (its active set after labels and table neurons)
    scratch = index.make_scratch(1, seed=7)
    out = []
    for _ in range(batches):
        start_shared_topup(scratch, 11)
        batch = []
        for x in queries:
            no_topup = index.query(x, LABELS, make_policy("union", min_active=0))
            active = index.query(x, LABELS, make_policy("union", min_active=600, topup=topup),
                                 scratch=scratch)
            _check_distinct_labels_first(active)
            assert active.size == max(600, no_topup.size)
            np.testing.assert_array_equal(active[: no_topup.size], no_topup)
            batch.append(active[no_topup.size:])
        out.append(batch)
    return out, scratch


def test_shared_topup_is_a_run_of_one_permutation_shared_by_the_batch(setup):
    index, _, queries = setup
    shared, scratch = _topups(index, queries, "shared")
    perm = scratch.perm
    assert np.array_equal(np.sort(perm), np.arange(N))
    where = np.empty(N, dtype=np.int64)
    where[perm] = np.arange(N)
    for batch in shared:
        # every sample's top-up follows the permutation from the batch's offset (cyclically)
        offsets = {int(where[run[0]]) for run in batch if run.size}
        assert len(offsets) <= 2  # a sample holding the offset's neuron already starts one later
        for run in batch:
            steps = np.diff(where[run]) % N
            assert (steps >= 1).all()
        # the batch shares its top-up: the union is little more than the largest top-up
        union = np.unique(np.concatenate(batch))
        assert union.size < 1.3 * max(r.size for r in batch)
    # a new offset per batch
    assert shared[0][0][0] != shared[1][0][0]
    # per-sample draws are independent: their union is what independent uniform subsets of
    # those sizes cover, N * (1 - prod(1 - s_i / N)), far more than the shared run's
    per_sample, _ = _topups(index, queries, "per-sample", batches=1)
    union = np.unique(np.concatenate(per_sample[0])).size
    expected = N * (1 - np.prod([1 - r.size / N for r in per_sample[0]]))
    assert union == pytest.approx(expected, rel=0.05)
    assert union > 2 * np.unique(np.concatenate(shared[0])).size


def test_threshold_matches_numpy_collision_counts(setup):
    index, _, queries = setup
    for threshold in (1, 2, 3):
        for x in queries:
            _, counts = _probed(index, x)
            active = index.query(x, LABELS, make_policy("threshold", threshold=threshold))
            _check_distinct_labels_first(active)
            expected = np.union1d(LABELS, np.flatnonzero(counts >= threshold))
            np.testing.assert_array_equal(np.sort(active), expected)


def test_topk_count_takes_the_most_frequent(setup):
    index, _, queries = setup
    for x in queries:
        _, counts = _probed(index, x)
        active = index.query(x, LABELS, make_policy("topk-count", budget=60))
        _check_distinct_labels_first(active)
        assert active.size == min(60, np.union1d(LABELS, np.flatnonzero(counts)).size)
        chosen = active[LABELS.size:]
        rest = np.setdiff1d(np.flatnonzero(counts), active)
        if rest.size:
            assert counts[chosen].min() >= counts[rest].max()


def test_vanilla_fills_the_budget_from_whole_probed_tables(setup):
    index, _, queries = setup
    for x in queries:
        buckets, counts = _probed(index, x)
        active = index.query(x, LABELS, make_policy("vanilla", budget=150))
        _check_distinct_labels_first(active)
        union = np.union1d(LABELS, np.flatnonzero(counts))
        assert active.size == min(150, union.size)
        assert np.isin(active, union).all()
        # Tables are consumed whole, one after another: at most the last one touched is cut.
        partial = [t for t, ids in enumerate(buckets) if 0 < np.isin(ids, active).sum() < ids.size]
        assert len(partial) <= 1


def test_random_policy_is_uniform_and_distinct(setup):
    index, _, _ = setup
    scratch = index.make_scratch(1, seed=5)
    hits = np.zeros(N)
    n_draws = 400
    for _ in range(n_draws):
        active = index.query(np.ones(D, np.float32), LABELS, make_policy("random", budget=103),
                             scratch=scratch)
        _check_distinct_labels_first(active)
        assert active.size == 103
        hits[active[3:]] += 1
    others = np.setdiff1d(np.arange(N), LABELS)
    expected = n_draws * 100 / others.size
    chi2 = ((hits[others] - expected) ** 2 / expected).sum()
    dof = others.size - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof)


def test_exact_topk_equals_argpartition(setup):
    index, w, queries = setup
    for x in queries:
        scores = w.astype(np.float64) @ x.astype(np.float64)
        active = index.query(x, None, make_policy("exact-topk", budget=50), weights=w)
        expected = np.argpartition(-scores, 50)[:50]
        np.testing.assert_array_equal(np.sort(active), np.sort(expected))
        nz = np.flatnonzero(x).astype(np.int32)
        sparse = index.query((nz, x[nz]), None, make_policy("exact-topk", budget=50), weights=w)
        np.testing.assert_array_equal(sparse, active)


@pytest.mark.parametrize("name", ["union", "threshold", "vanilla", "topk-count"])
def test_sparse_query_equals_dense_query(setup, name):
    index, _, queries = setup
    for x in queries[:5]:
        nz = np.flatnonzero(x).astype(np.int32)
        policy = make_policy(name, budget=200)
        dense = index.query(x, LABELS, policy, scratch=index.make_scratch(1, seed=3))
        sparse = index.query((nz, x[nz]), LABELS, policy, scratch=index.make_scratch(1, seed=3))
        np.testing.assert_array_equal(dense, sparse)


@pytest.mark.parametrize("name", ["union", "vanilla", "random"])
def test_deterministic_for_a_seed(setup, name):
    index, _, queries = setup
    policy = make_policy(name, min_active=1500, budget=300)

    def run(seed):
        scratch = index.make_scratch(1, seed=seed)
        return [index.query(x, LABELS, policy, scratch=scratch) for x in queries[:5]]

    for a, b in zip(run(11), run(11), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(run(11), run(12), strict=True))


def test_out_buffer_is_never_overrun_and_stamps_wrap(setup):
    index, w, queries = setup
    policy = make_policy("union", min_active=0)
    scratch = index.make_scratch(1)
    out = np.full(8, -7, dtype=np.int32)
    guard = np.full(16, -7, dtype=np.int32)
    guard[:8] = out
    n = query_dense(index.hash_functions, index.tables, policy, queries[0], LABELS, w, scratch,
                    0, guard[:8])
    assert n == 8 and (guard[8:] == -7).all()
    # Near the stamp limit the mark array is reset instead of overflowing.
    scratch.stamp[0] = np.iinfo(np.int32).max - 2
    expected = index.query(queries[1], LABELS, policy)
    for _ in range(4):
        got = index.query(queries[1], LABELS, policy, scratch=scratch)
        np.testing.assert_array_equal(got, expected)
    assert scratch.stamp[0] < 10


def test_out_capacity_bounds_every_policy(setup):
    index, _, _ = setup
    tables = index.tables
    assert out_capacity(make_policy("union", min_active=1000), tables, 5) == max(
        1000, 5 + 10 * 32)
    assert out_capacity(make_policy("random", budget=10**9), tables, 5) == N
    assert select_active(make_policy("exact-topk"), tables, np.zeros(10, np.int32), LABELS,
                         index.make_scratch(1), 0, np.empty(10, np.int32)) == -1


def test_policy_validation():
    with pytest.raises(ValueError, match="policy"):
        make_policy("softmax")
    with pytest.raises(ValueError, match="threshold"):
        make_policy("threshold", threshold=0)


def test_query_validates_inputs(setup):
    index, _, queries = setup
    with pytest.raises(ValueError, match="labels"):
        index.query(queries[0], np.array([N], dtype=np.int32))
    with pytest.raises(ValueError, match="strictly increasing"):
        index.query((np.array([3, 1], np.int32), np.ones(2, np.float32)))
    with pytest.raises(ValueError, match="shape"):
        index.query(np.ones(D + 1, np.float32))
