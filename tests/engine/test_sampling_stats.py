"""What the output layer's active sets hold (recall of the hardest negatives, where the active
set came from), against a brute-force NumPy oracle and sampling theory."""

from __future__ import annotations

import numpy as np
import pytest

from slide_bench.data import generate
from slide_bench.harness import epoch_order
from slide_engine.engine import HashConfig, OutputConfig, SlideConfig, SlideNetwork
from slide_engine.lsh import hash_dense, hash_scratch_sizes


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", 0)


def _trained(train, hash_cfg: HashConfig, n_batches: int = 6,
             init_std: float = 0.01) -> SlideNetwork:
    net = SlideNetwork(SlideConfig(lr=1e-2, init_std=init_std,
                                   output=OutputConfig(hash=hash_cfg)), seed=1, threads=1)
    net.prepare(train)
    order = epoch_order(train.n_points, 0, 0)
    for i in range(n_batches):
        net.train_batch(order[i * 64: (i + 1) * 64])
    return net


def _dense_x(data):
    x = np.zeros((data.n_points, data.n_features))
    rows = np.repeat(np.arange(data.n_points), np.diff(data.x_indptr))
    x[rows, data.x_indices] = data.x_values
    return x


def _oracle(net, data, min_active):
    """Recall and shares from NumPy: float64 forward, the LSH buckets of each hidden vector read
    from the tables, exact logits, top-k non-label neurons by a stable sort."""
    first, out = net.layers
    hidden = np.maximum(_dense_x(data) @ first.w.astype(np.float64) + first.b, 0.0)
    logits = hidden @ out.w.T.astype(np.float64) + out.b
    index = net._samplers[1].index
    hf, tables = index.hash_functions, index.tables
    n_float, n_int = hash_scratch_sizes(hf)
    buckets = np.empty(hf.l, np.int32)
    rec = {1: [], 10: []}
    parts = dict.fromkeys(("labels", "tables", "topup"), 0)
    for i in range(data.n_points):
        y = data.y_indices[data.y_indptr[i]: data.y_indptr[i + 1]]
        hash_dense(hf, hidden[i].astype(np.float32), np.empty(n_float, np.float32),
                   np.empty(n_int, np.int32), buckets)
        found = set()
        for t in range(hf.l):
            s = tables.start[t, buckets[t]]
            found.update(tables.ids[t, s: s + tables.size[t, buckets[t]]].tolist())
        found -= set(y.tolist())
        parts["labels"] += y.size
        parts["tables"] += len(found)
        parts["topup"] += max(0, min_active - y.size - len(found))
        z = logits[i].copy()
        z[y] = -np.inf
        top = np.argsort(-z, kind="stable")
        for k in rec:
            rec[k].append(np.mean([j in found for j in top[:k]]))
    total = sum(parts.values())
    return ({k: float(np.mean(v)) for k, v in rec.items()},
            {p: c / total for p, c in parts.items()})


def test_recall_and_shares_match_a_brute_force_oracle(tiny):
    train, test = tiny
    data = test.take(np.arange(150))
    # no top-up: the active set is the labels and the union of the probed buckets
    net = _trained(train, HashConfig(family="simhash", k=4, l=6, min_active=0,
                                     bucket_capacity=16))
    got = net.sampling_stats(data, batch=64)
    recall, shares = _oracle(net, data, 0)
    assert 0.0 < recall[10] < 1.0  # neither trivial: the test can fail
    # float32 vs float64 forward: a near-zero projection may flip one point's bucket
    assert got["recall_top1"] == pytest.approx(recall[1], abs=0.02)
    assert got["recall_top10"] == pytest.approx(recall[10], abs=0.02)
    for part in ("labels", "tables", "topup"):
        assert got[f"share_{part}"] == pytest.approx(shares[part], abs=0.01)
    assert got["share_topup"] == 0.0
    # a top-up to 80 neurons (within the active buffers): the same table neurons, then random
    net._samplers[1].policy = net._samplers[1].policy._replace(min_active=80)
    topped = net.sampling_stats(data, batch=64)
    _, shares = _oracle(net, data, 80)
    for part in ("labels", "tables", "topup"):
        assert topped[f"share_{part}"] == pytest.approx(shares[part], abs=0.01)
    assert topped["recall_top10"] >= got["recall_top10"]


def test_random_and_exact_policies_bracket_the_recall(tiny):
    train, test = tiny
    data = test.take(np.arange(300))
    n_labels = train.n_labels
    # uniform random active sets of 100 of 500 neurons: recall ~ (100 - labels) / (500 - labels)
    rand = _trained(train, HashConfig(policy="random", min_active=100)).sampling_stats(data)
    n_lab = np.diff(data.y_indptr)
    expect = np.mean((100 - n_lab) / (n_labels - n_lab))
    assert rand["recall_top10"] == pytest.approx(expect, abs=0.03)
    assert rand["share_tables"] == 0.0
    assert rand["share_labels"] == pytest.approx(n_lab.sum() / (100 * data.n_points))
    # the exact top-k oracle policy (scores w . h; untrained: biases 0; weights large enough
    # that float32 logits keep the float64 ranking) finds every hard negative
    exact = _trained(train, HashConfig(policy="exact-topk", min_active=60), n_batches=0,
                     init_std=1.0).sampling_stats(data)
    assert exact["recall_top1"] == 1.0 and exact["recall_top10"] == 1.0
    assert exact["share_topup"] == 0.0


def test_sampling_stats_leave_the_training_streams_alone(tiny):
    train, test = tiny
    cfg = HashConfig(family="simhash", k=4, l=6, min_active=120)
    a, b = _trained(train, cfg, 2), _trained(train, cfg, 2)
    a.sampling_stats(test.take(np.arange(100)))
    order = epoch_order(train.n_points, 0, 1)
    assert a.train_batch(order[:64]) == b.train_batch(order[:64])
