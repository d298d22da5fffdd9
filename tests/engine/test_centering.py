"""Centred query tables (``HashConfig.center_tables``): selection against a NumPy + LSH oracle.

The oracle hashes each query (and the query minus the batch mean, for the last ``center_tables``
tables) with the LSH package's own ``hash_dense`` and takes labels + the union of the probed
buckets; the sampler must select exactly that set, serially and in parallel. Thresholds: exact
set equality (the same float32 arithmetic on both sides).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from slide_bench.cli import from_dict
from slide_bench.data import generate
from slide_bench.errors import ConfigError
from slide_engine.engine import HashConfig, OutputConfig, SlideConfig, SlideNetwork
from slide_engine.engine.sampling import LayerSampler
from slide_engine.lsh import bucket_ids, hash_dense, hash_scratch_sizes

N_NEURONS, DIM, BATCH = 20000, 24, 16
HASH = HashConfig(family="simhash", k=8, l=10, min_active=0, center_tables=4)


def collapsed_batch(rng: np.random.Generator) -> np.ndarray:
    # ReLU-like queries sharing one large component (pairwise cosine ~0.99), as a collapsed
    # hidden layer produces
    common = np.abs(rng.standard_normal(DIM)) * 5.0
    return np.maximum(common + rng.standard_normal((BATCH, DIM)) * 0.1, 0.0).astype(np.float32)


def make_sampler(cfg: HashConfig, threads: int = 1) -> LayerSampler:
    sampler = LayerSampler(cfg, N_NEURONS, DIM, is_output=True, max_labels=3, seed=4,
                           layer_index=1, threads=threads)
    weights = np.random.default_rng(1).standard_normal((N_NEURONS, DIM)).astype(np.float32)
    sampler.build(weights)
    return sampler


def labels_csr(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    counts = rng.integers(1, 4, size=BATCH)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, rng.integers(0, N_NEURONS, size=indptr[-1]).astype(np.int32)


def select(sampler: LayerSampler, val: np.ndarray, y: tuple, parallel: bool,
           center: bool) -> list[set[int]]:
    cap = sampler.capacity
    ids = np.zeros((BATCH, cap), dtype=np.int32)
    cnt = np.zeros(BATCH, dtype=np.int32)
    prev = (np.zeros((BATCH, DIM), dtype=np.int32), np.full(BATCH, DIM, dtype=np.int32), val)
    sampler.select_dense(parallel, np.zeros((1, 1), np.float32), prev, True,
                         np.arange(BATCH, dtype=np.int64), *y, True, ids, cnt,
                         center_queries=center)
    return [set(ids[i, : cnt[i]].tolist()) for i in range(BATCH)]


def oracle(sampler: LayerSampler, val: np.ndarray, y: tuple, n_center: int) -> list[set[int]]:
    hf, tables = sampler.index.hash_functions, sampler.index.tables
    n_float, n_int = hash_scratch_sizes(hf)
    fbuf, codes = np.empty(n_float, np.float32), np.empty(n_int, np.int32)
    mean = val.mean(axis=0, dtype=np.float32)
    out = []
    for i in range(BATCH):
        raw, centred = np.empty(hf.l, np.int32), np.empty(hf.l, np.int32)
        hash_dense(hf, val[i], fbuf, codes, raw)
        hash_dense(hf, (val[i] - mean).astype(np.float32), fbuf, codes, centred)
        buckets = np.concatenate([raw[: hf.l - n_center], centred[hf.l - n_center:]])
        found = set(y[1][y[0][i]: y[0][i + 1]].tolist())
        for t, b in enumerate(buckets):
            found.update(bucket_ids(tables, t, int(b)).tolist())
        out.append(found)
    return out


@pytest.mark.parametrize("parallel", [False, True])
def test_centred_tables_select_the_oracle_set(parallel):
    rng = np.random.default_rng(0)
    val, y = collapsed_batch(rng), labels_csr(rng)
    sampler = make_sampler(HASH, threads=numba.config.NUMBA_NUM_THREADS if parallel else 1)
    assert select(sampler, val, y, parallel, center=True) == oracle(sampler, val, y, 4)
    # without centring (inference, or center_tables=0) every table gets the raw query
    assert select(sampler, val, y, parallel, center=False) == oracle(sampler, val, y, 0)


def test_centred_tables_spread_a_collapsed_batch():
    # the property the option exists for: raw queries of a collapsed batch probe (nearly) the
    # same buckets, so the batch shares one active set; centred ones find different neurons
    rng = np.random.default_rng(2)
    val, y = collapsed_batch(rng), labels_csr(rng)
    all_centred = HashConfig(family="simhash", k=8, l=10, min_active=0, center_tables=10)
    sampler = make_sampler(all_centred)
    raw = set().union(*select(sampler, val, y, False, center=False))
    centred = set().union(*select(sampler, val, y, False, center=True))
    assert len(centred) > 5 * len(raw)


def test_training_with_centred_tables_is_deterministic_and_finite():
    train, _ = generate("tiny", 0)
    cfg = SlideConfig(lr=1e-3, output=OutputConfig(sampled=True, hash=HashConfig(
        family="simhash", k=4, l=8, min_active=32, rebuild_every_samples=96, center_tables=4)))
    losses = []
    for _ in range(2):
        net = SlideNetwork(cfg, seed=3, threads=1)
        net.prepare(train)
        losses.append([net.train_batch(np.arange(i * 32, (i + 1) * 32)) for i in range(5)])
        assert net.is_finite()
    assert losses[0] == losses[1]


@pytest.mark.parametrize(("mapping", "message"), [
    ({"output": {"hash": {"l": 8, "center_tables": 9}}}, "must be in"),
    ({"output": {"hash": {"center_tables": -1}}}, "must be in"),
    ({"output": {"hash": {"center_tables": 2, "policy": "random"}}}, "table-based policy"),
    ({"hidden": [{"sampled": True, "hash": {"center_tables": 2}}]}, "dense layer below"),
    ({"hidden": [{"sampled": True}], "output": {"hash": {"center_tables": 2}}},
     "dense layer below"),
], ids=["too-many", "negative", "random-policy", "first-layer", "sampled-below"])
def test_bad_center_tables_are_config_errors(mapping, message):
    with pytest.raises(ConfigError, match=f"center_tables {message}|center_tables.*{message}"):
        from_dict(SlideConfig, mapping)


def test_warmup_probe_keeps_center_tables_within_its_tables():
    # the warm-up probe shrinks L to 2; centring must shrink with it (it once indexed tables
    # 2 - 25 .. 2 and corrupted the heap) and still take the centred path
    train, _ = generate("tiny", 0)
    cfg = SlideConfig(lr=1e-3, output=OutputConfig(hash=HashConfig(l=30, center_tables=25)))
    net = SlideNetwork(cfg, seed=0, threads=1)
    net.prepare(train)
    net.warmup(np.arange(32))
    assert net.is_finite()


def test_sampler_rejects_more_centred_tables_than_tables():
    cfg = HashConfig(l=4)
    cfg.center_tables = 5  # set after construction, as a config copy could
    with pytest.raises(ValueError, match="center_tables"):
        make_sampler(cfg)
