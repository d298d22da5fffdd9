"""Hash families against their definitions: SimHash theory, WTA/DWTA/MinHash NumPy references."""

import itertools

import numpy as np
import pytest

from slide_engine.lsh import (
    hash_codes_dense,
    hash_codes_sparse,
    hash_dense,
    hash_scratch_sizes,
    make_hash_functions,
    pack_codes,
)
from slide_engine.lsh.rng import hash3

FAMILIES = ["simhash", "wta", "dwta", "minhash"]


def _codes(hf, x):
    n_float, n_int = hash_scratch_sizes(hf)
    codes = np.empty(n_int, dtype=np.int32)
    hash_codes_dense(hf, np.ascontiguousarray(x, dtype=np.float32),
                     np.empty(n_float, dtype=np.float32), codes)
    return codes


def _sparse_codes(hf, x):
    n_float, n_int = hash_scratch_sizes(hf)
    idx = np.flatnonzero(x).astype(np.int32)
    codes = np.empty(n_int, dtype=np.int32)
    hash_codes_sparse(hf, idx, x[idx].astype(np.float32), np.empty(n_float, dtype=np.float32),
                      codes)
    return codes


def _densify_reference(codes, seed):
    # The documented probe sequence: h(i, 1), h(i, 2), ... then a forward scan after 64 misses.
    n = codes.size
    full = codes >= 0
    if not full.any():
        return np.zeros_like(codes)
    out = codes.copy()
    for i in np.flatnonzero(~full):
        src = -1
        for attempt in range(1, 65):
            src = int(hash3(seed, int(i), attempt) % np.uint64(n))
            if full[src]:
                break
        while not full[src]:
            src = (src + 1) % n
        out[i] = codes[src]
    return out


@pytest.mark.parametrize("theta", [0.2, 0.6, 1.0, 1.6, 2.2, 2.9])
def test_simhash_collision_probability_is_one_minus_angle_over_pi(theta):
    rng = np.random.default_rng(11)
    d, n_bits, n_pairs = 128, 2000, 10
    hf = make_hash_functions("simhash", d, 1, n_bits, 2, seed=5)
    hits = 0
    for _ in range(n_pairs):
        u = rng.standard_normal(d)
        u /= np.linalg.norm(u)
        v = rng.standard_normal(d)
        v -= (v @ u) * u
        v /= np.linalg.norm(v)
        y = np.cos(theta) * u + np.sin(theta) * v
        hits += int((_codes(hf, u) == _codes(hf, y)).sum())
    trials = n_bits * n_pairs
    p = 1.0 - theta / np.pi
    # 4 binomial standard deviations, plus 0.005 for the sign projections being +-1 on a third
    # of the coordinates rather than Gaussian (the theory's assumption; CLT over ~43 terms).
    bound = 4.0 * np.sqrt(p * (1.0 - p) / trials) + 0.005
    assert abs(hits / trials - p) < bound


def test_simhash_projection_density_is_about_a_third():
    hf = make_hash_functions("simhash", 128, 9, 50, 2**18, seed=0)
    density = np.count_nonzero(hf.proj) / hf.proj.size
    assert abs(density - 1.0 / 3.0) < 0.01
    assert set(np.unique(hf.proj)) == {-1, 0, 1}


def test_wta_matches_numpy_definition_without_the_reference_indexing_bug():
    rng = np.random.default_rng(1)
    hf = make_hash_functions("wta", 64, 4, 20, 2**12, seed=2, bin_size=8)
    for _ in range(20):
        x = rng.standard_normal(64).astype(np.float32)
        # Definition: code = position (within the bin) of the bin's largest value, first on ties.
        expected = np.argmax(x[hf.bins], axis=1)
        np.testing.assert_array_equal(_codes(hf, x), expected)
    x = np.zeros(64, dtype=np.float32)
    x[hf.bins[0, 5]] = 1.0
    x[hf.bins[0, 2]] = 1.0
    assert _codes(hf, x)[0] == 2


def test_wta_bins_come_from_permutations():
    hf = make_hash_functions("wta", 64, 4, 20, 2**12, seed=2, bin_size=8)
    for f in range(hf.bins.shape[0]):
        assert np.unique(hf.bins[f]).size == 8
    # Consecutive groups of 64 / 8 bins cover each coordinate exactly once.
    assert np.array_equal(np.sort(hf.bins[:8].ravel()), np.arange(64))


def test_dwta_matches_numpy_definition_with_densification():
    rng = np.random.default_rng(3)
    hf = make_hash_functions("dwta", 200, 3, 30, 2**12, seed=4, bin_size=8)
    n_empty_seen = 0
    for density in (0.02, 0.1, 0.5, 1.0):
        for _ in range(10):
            x = (rng.standard_normal(200) * (rng.random(200) < density)).astype(np.float32)
            vals = x[hf.bins]
            present = vals != 0
            codes = np.where(present.any(axis=1),
                             np.argmax(np.where(present, vals, -np.inf), axis=1), -1)
            n_empty_seen += int((codes < 0).sum())
            np.testing.assert_array_equal(_codes(hf, x), _densify_reference(codes, hf.seed))
    assert n_empty_seen > 100  # densification was exercised


def test_dwta_all_zero_input_is_deterministic():
    hf = make_hash_functions("dwta", 64, 6, 10, 2**18, seed=0)
    np.testing.assert_array_equal(_codes(hf, np.zeros(64)), np.zeros(60, dtype=np.int32))


@pytest.mark.parametrize("topk", [0, 8])
def test_minhash_matches_numpy_definition(topk):
    rng = np.random.default_rng(5)
    d = 300
    hf = make_hash_functions("minhash", d, 2, 40, 2**12, seed=6, code_bits=4, minhash_topk=topk)
    n_fun = 80
    h = np.array([int(hash3(hf.seed, j, 0)) >> 33 for j in range(d)], dtype=np.int64)
    for _ in range(10):
        x = (rng.random(d) * (rng.random(d) < 0.15)).astype(np.float32)
        support = np.flatnonzero(x)
        if topk:
            support = support[np.argsort(-x[support], kind="stable")[:topk]]
        codes = np.full(n_fun, -1, dtype=np.int64)
        for j in support:
            b = (h[j] * n_fun) >> 31
            if codes[b] < 0 or h[j] < codes[b]:
                codes[b] = h[j]
        expected = _densify_reference(codes, hf.seed) & 15
        np.testing.assert_array_equal(_codes(hf, x), expected)


def test_minhash_collision_rate_follows_jaccard():
    # b-bit minwise hashing: P(collision) = J + (1 - J) / 2**b for random sets (one-permutation
    # hashing with densification keeps this in expectation).
    rng = np.random.default_rng(7)
    d, b = 2000, 4
    hf = make_hash_functions("minhash", d, 1, 400, 2**12, seed=8, code_bits=b, minhash_topk=0)
    for jac in (0.2, 0.5, 0.8):
        rates = []
        for _ in range(10):
            n_common = round(300 * 2 * jac / (1 + jac))
            perm = rng.permutation(d)
            common, rest = perm[:n_common], perm[n_common:]
            a = np.concatenate([common, rest[: 300 - n_common]])
            c = np.concatenate([common, rest[300 - n_common: 600 - 2 * n_common]])
            xa = np.zeros(d, np.float32)
            xa[a] = 1.0
            xc = np.zeros(d, np.float32)
            xc[c] = 1.0
            rates.append(np.mean(_codes(hf, xa) == _codes(hf, xc)))
        expected = jac + (1 - jac) / 2**b
        assert abs(np.mean(rates) - expected) < 0.03, (jac, np.mean(rates), expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_sparse_input_hashes_like_its_dense_form(family):
    rng = np.random.default_rng(9)
    d = 500
    hf = make_hash_functions(family, d, 4, 12, 2**16, seed=10, minhash_topk=16)
    for density in (0.01, 0.05, 0.3):
        for _ in range(5):
            x = (rng.random(d) * (rng.random(d) < density)).astype(np.float32)
            np.testing.assert_array_equal(_sparse_codes(hf, x), _codes(hf, x))


@pytest.mark.parametrize("family", FAMILIES)
def test_codes_deterministic_for_a_seed_and_fresh_for_a_new_one(family):
    x = np.random.default_rng(0).random(128).astype(np.float32)
    a = _codes(make_hash_functions(family, 128, 6, 50, 2**18, seed=1), x)
    b = _codes(make_hash_functions(family, 128, 6, 50, 2**18, seed=1), x)
    c = _codes(make_hash_functions(family, 128, 6, 50, 2**18, seed=2), x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _pack(hf, codes):
    buckets = np.empty(hf.l, dtype=np.int32)
    pack_codes(hf, np.asarray(codes, dtype=np.int32), buckets)
    return buckets


def test_concat_packing_is_lossless():
    hf = make_hash_functions("dwta", 64, 3, 1, 2**20, seed=0)
    assert hf.n_buckets == 2**9
    tuples = list(itertools.product(range(8), repeat=3))
    buckets = [int(_pack(hf, t)[0]) for t in tuples]
    assert len(set(buckets)) == len(tuples)
    assert max(buckets) < hf.n_buckets
    assert _pack(hf, (1, 2, 3))[0] == (1 << 6) | (2 << 3) | 3


def test_packing_is_the_plain_index_while_it_fits():
    hf = make_hash_functions("dwta", 64, 6, 2, 2**18, seed=0)
    assert hf.n_buckets == 2**18 and not hf.fold
    codes = [7, 6, 5, 4, 3, 2, 0, 1, 2, 3, 4, 5]
    full = [int("".join(f"{c:03b}" for c in codes[t * 6:(t + 1) * 6]), 2) for t in range(2)]
    np.testing.assert_array_equal(_pack(hf, codes), full)


# K codes wider than the bucket index: DWTA/WTA K=8 (24 bits) and MinHash K=9 (36 bits) at
# 2**18, SimHash K=12 at 2**8. A mod of a power of two would keep only the last codes.
WIDE = {"simhash": dict(k=12, n_buckets=2**8), "wta": dict(k=8, n_buckets=2**18),
        "dwta": dict(k=8, n_buckets=2**18), "minhash": dict(k=9, n_buckets=2**18)}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_code_changes_the_bucket_when_codes_exceed_the_bucket_bits(family):
    opts = WIDE[family]
    hf = make_hash_functions(family, 128, opts["k"], 4, opts["n_buckets"], seed=2)
    assert hf.fold and hf.n_buckets == opts["n_buckets"]
    assert hf.k * hf.code_bits > np.log2(hf.n_buckets)
    rng = np.random.default_rng(0)
    n_inputs, k = 400, hf.k
    changed = np.zeros(k)
    for _ in range(n_inputs):
        x = (rng.random(128) * (rng.random(128) < 0.5)).astype(np.float32)
        codes = _codes(hf, x)  # real codes of the family
        base = _pack(hf, codes)
        assert base.min() >= 0 and base.max() < hf.n_buckets
        for j in range(k):  # code j of table 0 replaced by another valid code
            other = codes.copy()
            other[j] = (codes[j] + 1 + rng.integers((1 << hf.code_bits) - 1)) % (1 << hf.code_bits)
            changed[j] += _pack(hf, other)[0] != base[0]
    # a mixing fold collides on two different code tuples with probability ~1/n_buckets
    assert (changed / n_inputs).min() > 0.95, changed / n_inputs


@pytest.mark.parametrize("family", FAMILIES)
def test_folded_buckets_spread_over_the_whole_range(family):
    opts = WIDE[family]
    hf = make_hash_functions(family, 64, opts["k"], 1, opts["n_buckets"], seed=4)
    codes = np.random.default_rng(1).integers(0, 1 << hf.code_bits, (20000, hf.k))
    buckets = np.array([_pack(hf, c)[0] for c in codes])
    # uniform over n_buckets: a tenth of the range holds ~10% of them
    share = np.mean(buckets < hf.n_buckets // 10)
    assert 0.08 < share < 0.12
    assert buckets.max() >= hf.n_buckets * 0.9


def test_reference_overlap_packing_uses_a_two_bit_shift():
    hf = make_hash_functions("dwta", 64, 3, 1, 2**20, seed=0, packing="reference-overlap-2bit")
    assert hf.n_buckets == (7 << 4) + (7 << 2) + 7 + 1
    tuples = list(itertools.product(range(8), repeat=3))
    buckets = [int(_pack(hf, t)[0]) for t in tuples]
    assert buckets == [(a << 4) + (b << 2) + c for a, b, c in tuples]
    assert len(set(buckets)) < len(tuples)  # overlapping on purpose: lossy


def test_simhash_packing_concatenates_bits():
    hf = make_hash_functions("simhash", 32, 9, 3, 2**18, seed=0)
    assert hf.n_buckets == 512
    x = np.random.default_rng(1).standard_normal(32).astype(np.float32)
    codes = _codes(hf, x)
    buckets = np.empty(3, dtype=np.int32)
    n_float, n_int = hash_scratch_sizes(hf)
    hash_dense(hf, x, np.empty(n_float, np.float32), np.empty(n_int, np.int32), buckets)
    expected = [int("".join(str(c) for c in codes[t * 9:(t + 1) * 9]), 2) for t in range(3)]
    np.testing.assert_array_equal(buckets, expected)


def test_invalid_configuration_is_rejected():
    with pytest.raises(ValueError, match="family"):
        make_hash_functions("e2lsh", 8, 1, 1, 2, seed=0)
    with pytest.raises(ValueError, match="packing"):
        make_hash_functions("wta", 8, 1, 1, 2, seed=0, packing="shift")
    with pytest.raises(ValueError, match="bin_size"):
        make_hash_functions("wta", 4, 1, 1, 2, seed=0, bin_size=8)
    with pytest.raises(ValueError, match="63 bits"):
        make_hash_functions("minhash", 8, 16, 1, 2, seed=0, code_bits=4)
