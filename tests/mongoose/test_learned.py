"""MONGOOSE learnable SimHash: pair mining, loss gradient and retrieval quality against oracles."""

from __future__ import annotations

import numpy as np
import pytest

from slide_bench.data import shuffle
from slide_bench.data.repo_zip import read_repo_zip
from slide_engine.engine import SlideConfig, SlideNetwork
from slide_engine.engine.config import HashConfig, OutputConfig
from slide_engine.lsh import LSHIndex
from slide_engine.mongoose.learned import (
    FitSettings,
    Pairs,
    fit_projection,
    hashing_projection,
    loss_and_grad,
    mine_pairs,
)
from slide_engine.mongoose.retrieval import (
    retrieve_by_codes,
    retrieve_from_tables,
    simhash_codes,
    topk_recall,
)


def test_loss_grad_matches_finite_differences():
    rng = np.random.default_rng(0)
    k, n_tables, d, b = 3, 4, 7, 20
    proj = rng.standard_normal((k * n_tables, d))
    xq, xi = rng.standard_normal((b, d)), rng.standard_normal((b, d))
    label = (rng.random(b) < 0.5).astype(np.float32)
    _, grad = loss_and_grad(proj, xq, xi, label, k, n_tables, 0.7)
    num = np.zeros_like(proj)
    h = 1e-6
    for idx in np.ndindex(proj.shape):
        step = np.zeros_like(proj)
        step[idx] = h
        up, _ = loss_and_grad(proj + step, xq, xi, label, k, n_tables, 0.7)
        down, _ = loss_and_grad(proj - step, xq, xi, label, k, n_tables, 0.7)
        num[idx] = (up - down) / (2 * h)
    assert np.max(np.abs(num - grad)) < 1e-7 * max(1.0, np.max(np.abs(grad))) + 1e-9


def test_mine_pairs_matches_bruteforce():
    rng = np.random.default_rng(1)
    m, n, d = 40, 300, 8
    queries = rng.standard_normal((m, d)).astype(np.float32)
    weights = rng.standard_normal((n, d)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    retrieved = rng.random((m, n)) < 0.2
    indptr = np.concatenate([[0], np.cumsum(retrieved.sum(axis=1))]).astype(np.int64)
    ids = np.concatenate([np.flatnonzero(r) for r in retrieved]).astype(np.int64)
    pairs = mine_pairs(queries, weights, bias, indptr, ids, 0.01, 7, rng)
    scores = queries.astype(np.float64) @ weights.T.astype(np.float64) + bias
    top = np.argsort(-scores, axis=1)[:, :7]  # ceil(0.01 * 300) = 3 < pos_min_k = 7
    is_top = np.zeros((m, n), dtype=bool)
    np.put_along_axis(is_top, top, True, axis=1)
    positive = is_top & ~retrieved
    negative = (scores < np.median(scores, axis=1, keepdims=True)) & retrieved
    assert pairs.missed_top == positive.sum()
    assert pairs.retrieved_low == negative.sum()
    pos = pairs.label == 1
    assert pos.sum() == (~pos).sum() == min(positive.sum(), negative.sum())
    assert positive[pairs.query[pos], pairs.item[pos]].all()
    assert negative[pairs.query[~pos], pairs.item[~pos]].all()
    assert len(set(zip(pairs.query.tolist(), pairs.item.tolist(), strict=True))) == len(pairs.query)


@pytest.mark.slow
def test_retrieval_matches_bruteforce_collisions():
    rng = np.random.default_rng(2)
    n, d, k, n_tables = 500, 12, 3, 4
    weights = rng.standard_normal((n, d)).astype(np.float32)
    queries = rng.standard_normal((30, d)).astype(np.float32)
    index = LSHIndex(n, d, family="simhash", k=k, l=n_tables, n_buckets=2**k, capacity=n, seed=3)
    index.build(weights)
    proj = index.hash_functions.proj.T.astype(np.float32)
    qc, ic = simhash_codes(queries, proj, k, n_tables), simhash_codes(weights, proj, k, n_tables)
    brute = (qc[:, None, :] == ic[None, :, :]).any(axis=2)
    for indptr, ids in (
        retrieve_by_codes(qc, ic),
        retrieve_from_tables(index.hash_functions, index.tables, queries),
    ):
        got = np.zeros_like(brute)
        for i in range(queries.shape[0]):
            row = ids[indptr[i] : indptr[i + 1]]
            assert np.unique(row).size == row.size
            got[i, row] = True
        assert np.array_equal(got, brute)


def clustered(rng: np.random.Generator, n_items: int, n_queries: int):
    """Neurons and queries near 40 cluster centres in an 8-dim subspace of R^64, buried under
    isotropic noise of larger norm in the other 56 dims: inner products are decided by the
    subspace, angles mostly by the noise, so random hyperplanes waste most of their bits."""
    d, ds, n_clusters = 64, 8, 40
    centres = rng.standard_normal((n_clusters, ds))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(count: int) -> np.ndarray:
        x = np.zeros((count, d))
        x[:, :ds] = centres[rng.integers(0, n_clusters, count)] + 0.15 * rng.standard_normal(
            (count, ds)
        )
        x[:, ds:] = 1.5 * rng.standard_normal((count, d - ds)) / np.sqrt(d - ds)
        return x.astype(np.float32)

    return draw(n_items), draw(n_queries), draw(n_queries)


def recall_with(index: LSHIndex, queries: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    indptr, ids = retrieve_from_tables(index.hash_functions, index.tables, queries)
    return topk_recall(queries, weights, indptr, ids, 10)


@pytest.mark.slow
@pytest.mark.parametrize("binarize", [False, True])
def test_learned_hash_beats_random_on_clustered_data(binarize):
    rng = np.random.default_rng(4)
    weights, train_q, test_q = clustered(rng, 4000, 1024)
    bias = np.zeros(weights.shape[0], dtype=np.float32)
    k, n_tables = 6, 10
    index = LSHIndex(
        4000, 64, family="simhash", k=k, l=n_tables, n_buckets=2**k, capacity=4000, seed=5
    )
    index.build(weights)
    before, size_before = recall_with(index, test_q, weights)
    fitted = index.hash_functions.proj.T.astype(np.float32)
    for _ in range(3):  # three scheduler firings
        hf = index.hash_functions
        indptr, ids = retrieve_from_tables(hf, index.tables, train_q)
        pairs = mine_pairs(train_q, weights, bias, indptr, ids, 0.001, 10, rng)
        fitted, losses = fit_projection(
            fitted, k, n_tables, train_q, weights, pairs, FitSettings(steps=100), rng
        )
        assert losses[-1] < losses[0]
        index.hash_functions = hf._replace(
            proj=np.ascontiguousarray(hashing_projection(fitted, binarize).T)
        )
        index.build(weights)
    after, size_after = recall_with(index, test_q, weights)
    print(
        f"\nclustered, K={k} L={n_tables}, held-out recall@10 (mean retrieved): "
        f"random {before:.3f} ({size_before:.0f}) -> learned{' sign(P)' if binarize else ''} "
        f"{after:.3f} ({size_after:.0f})"
    )
    if binarize:  # the released sign(P) keeps little of the fit on this data
        assert after > before - 0.05
    else:
        assert after > before + 0.15
    assert size_after < 1.5 * size_before


def test_fit_without_pairs_keeps_projection():
    proj = np.ones((6, 4), dtype=np.float32)
    empty = Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), 0, 0)
    out, losses = fit_projection(
        proj,
        3,
        2,
        np.zeros((0, 4), np.float32),
        np.zeros((0, 4), np.float32),
        empty,
        FitSettings(),
        np.random.default_rng(0),
    )
    assert losses == [] and np.array_equal(out, proj)


def hidden_activations(network: SlideNetwork, data) -> np.ndarray:
    """NumPy oracle of the first layer's ReLU output (the sampled output layer's queries)."""
    w0, b0 = network.layers[0].w, network.layers[0].b  # input-major (D, H)
    out = np.zeros((data.n_points, w0.shape[1]), dtype=np.float32)
    for i in range(data.n_points):
        a, b = data.x_indptr[i], data.x_indptr[i + 1]
        out[i] = data.x_values[a:b] @ w0[data.x_indices[a:b]]
    return np.maximum(out + b0, 0.0)


@pytest.mark.slow
def test_learned_hash_beats_random_on_trained_bibtex_layer(bibtex_zip):
    train, test = read_repo_zip(bibtex_zip, 1)
    train, test = shuffle(train, 0), shuffle(test, 0)
    k, n_tables = 4, 10
    hashing = HashConfig(family="simhash", k=k, l=n_tables, min_active=16)
    network = SlideNetwork(SlideConfig(lr=1e-3, output=OutputConfig(hash=hashing)), seed=0)
    network.prepare(train)
    for epoch in range(30):
        order = np.random.default_rng([0, epoch]).permutation(train.n_points)
        for start in range(0, train.n_points, 128):
            network.train_batch(order[start : start + 128])
    weights, bias = network.layers[1].w, network.layers[1].b
    rng = np.random.default_rng(1)
    train_q = hidden_activations(network, train.take(rng.choice(train.n_points, 256, False)))
    test_q = hidden_activations(network, test.take(np.arange(1000)))
    index = LSHIndex(
        weights.shape[0],
        weights.shape[1],
        family="simhash",
        k=k,
        l=n_tables,
        n_buckets=2**k,
        capacity=128,
        seed=2,
    )
    index.build(weights)
    aug_q = np.concatenate([test_q, np.ones((test_q.shape[0], 1), np.float32)], axis=1)
    aug_w = np.concatenate([weights, bias[:, None]], axis=1)

    def recall() -> tuple[float, float]:  # top-10 by logit q . w + b
        indptr, ids = retrieve_from_tables(index.hash_functions, index.tables, test_q)
        return topk_recall(aug_q, aug_w, indptr, ids, 10)

    before, size_before = recall()
    fitted = index.hash_functions.proj.T.astype(np.float32)
    for _ in range(3):
        hf = index.hash_functions
        indptr, ids = retrieve_from_tables(hf, index.tables, train_q)
        pairs = mine_pairs(train_q, weights, bias, indptr, ids, 0.001, 5, rng)
        fitted, _ = fit_projection(
            fitted, k, n_tables, train_q, weights, pairs, FitSettings(steps=10), rng
        )
        index.hash_functions = hf._replace(
            proj=np.ascontiguousarray(hashing_projection(fitted, False).T)
        )
        index.build(weights)
    after, size_after = recall()
    print(
        f"\nBibtex trained output layer (159 neurons), K={k} L={n_tables}, held-out recall@10 "
        f"(mean retrieved): random {before:.3f} ({size_before:.1f}) -> learned {after:.3f} "
        f"({size_after:.1f})"
    )
    assert after > before + 0.05
    assert size_after < 1.5 * size_before
