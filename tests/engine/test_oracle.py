"""Oracle tests of the SLIDE engine against a float64 NumPy reference (one step, exact maths).

Thresholds: relative errors (Frobenius norms) <= 1e-5 for the loss, every gradient and the
weights after one Adam step; bit equality where the maths is identical by construction.
"""

from __future__ import annotations

import numpy as np
import pytest
from _engine_oracle import B1, B2, EPS, LR, RTOL, active_sets, check_step, make_net, rel
from _engine_reference import adam_first_step, labels_of, toy_data

from slide_engine.engine import HashConfig, LayerConfig, OutputConfig
from slide_engine.engine.adam import adam_rows_serial, bias_correction
from slide_engine.engine.kernels import softmax_loss_serial

ROWS = np.array([0, 5, 3, 17, 9, 11, 2, 20], dtype=np.int64)  # row 0 has no labels


@pytest.mark.parametrize("adam", ["lazy", "dense"])
def test_dense_network_step_matches_reference(adam):
    net = make_net([LayerConfig(units=8)], OutputConfig(sampled=False), adam=adam)
    check_step(net, ROWS, use_active=False)


def test_two_hidden_layers_step_matches_reference():
    net = make_net([LayerConfig(units=8), LayerConfig(units=6)], OutputConfig(sampled=False))
    check_step(net, ROWS, use_active=False)


@pytest.mark.slow
def test_sampled_path_with_every_neuron_active_matches_reference():
    # exact top-k with a budget of every neuron: the sampled kernels (labels first, gathers,
    # HOGWILD scatter) on a hidden layer and the output layer must equal the dense maths
    all_hidden = HashConfig(policy="exact-topk", min_active=8, k=2, l=4, n_buckets=16)
    all_out = HashConfig(policy="exact-topk", min_active=15, k=2, l=4, n_buckets=16)
    net = make_net([LayerConfig(units=8, sampled=True, hash=all_hidden)],
                   OutputConfig(sampled=True, hash=all_out))
    check_step(net, ROWS, use_active=False)


@pytest.mark.parametrize("accumulate", ["hogwild", "rows"])
@pytest.mark.parametrize("depth", [1, 2])
def test_sampled_output_gradient_matches_reference(accumulate, depth):
    # the paper's network (dense hidden layers, sampled output), HOGWILD or row-owned sums
    out = HashConfig(family="simhash", policy="random", min_active=6, k=3, l=3, n_buckets=8)
    hidden = [LayerConfig(units=8), LayerConfig(units=6)][:depth]
    net = make_net(hidden, OutputConfig(sampled=True, hash=out), accumulate=accumulate)
    check_step(net, ROWS, use_active=True)
    assert (net.layers[-1].g.size == 0) == (accumulate == "rows")  # no accumulator stored


@pytest.mark.parametrize("policy", ["random", "union"])
def test_sampled_subset_step_matches_reference(policy):
    out = HashConfig(family="simhash", policy=policy, min_active=6, k=3, l=3, n_buckets=8)
    hidden = HashConfig(family="simhash", policy="random", min_active=5, k=2, l=2, n_buckets=4)
    net = make_net([LayerConfig(units=8, sampled=True, hash=hidden)],
                   OutputConfig(sampled=True, hash=out))
    check_step(net, ROWS, use_active=True)
    active = active_sets(net, len(ROWS))
    assert max(len(a) for a in active[1]) < 15, "the output layer must genuinely sample"
    for i, r in enumerate(ROWS):  # labels always active, and first
        labels = labels_of(net._train, r)
        assert np.array_equal(np.sort(active[1][i][: len(labels)]), labels)


def test_sampled_first_layer_matches_reference():
    first = HashConfig(family="dwta", policy="random", min_active=5, k=2, l=3, n_buckets=16,
                       bin_size=4)
    net = make_net([LayerConfig(units=8, sampled=True, hash=first)],
                   OutputConfig(sampled=False))
    check_step(net, ROWS, use_active=True)


def test_row_owned_and_hogwild_gradients_train_alike():
    # one thread: both sum a row's gradient over its samples in sample order
    out = HashConfig(family="simhash", policy="union", min_active=6, k=3, l=3, n_buckets=8)
    nets = [make_net([LayerConfig(units=8)], OutputConfig(sampled=True, hash=out), accumulate=a)
            for a in ("hogwild", "rows")]
    for step in range(6):
        rows = np.roll(ROWS, step)
        losses = [net.train_batch(rows) for net in nets]
        assert rel(losses[1], losses[0]) <= RTOL
    for a, b in zip(nets[0].layers, nets[1].layers, strict=True):
        assert rel(b.w, a.w) <= RTOL and rel(b.b, a.b) <= RTOL
        assert np.array_equal(a.row_step, b.row_step)


def test_sparse_softmax_is_dense_softmax_restricted_and_renormalised():
    rng = np.random.default_rng(1)
    n_labels, batch, cap = 50, 4, 20
    logits = rng.standard_normal((batch, n_labels))
    y_indptr = np.array([0, 2, 3, 3, 6], dtype=np.int64)
    y_indices = np.array([4, 9, 30, 1, 2, 44], dtype=np.int32)
    ids = np.zeros((batch, cap), np.int32)
    cnt = np.zeros(batch, np.int32)
    for i in range(batch):
        labels = y_indices[y_indptr[i] : y_indptr[i + 1]]
        rest = rng.choice(np.setdiff1d(np.arange(n_labels), labels), size=12, replace=False)
        act = np.concatenate([labels, rest])
        ids[i, : len(act)], cnt[i] = act, len(act)
    val = np.take_along_axis(logits, ids, axis=1).astype(np.float32)
    loss = np.zeros(batch)
    softmax_loss_serial(np.arange(batch, dtype=np.int64), y_indptr, y_indices, ids, cnt, val,
                        True, loss)
    for i in range(batch):
        act = ids[i, : cnt[i]]
        labels = y_indices[y_indptr[i] : y_indptr[i + 1]]
        if len(labels) == 0:
            assert loss[i] == 0.0 and not val[i, : cnt[i]].any()
            continue
        dense = np.exp(logits[i] - logits[i].max())
        dense /= dense.sum()
        restricted = dense[act] / dense[act].sum()
        target = np.isin(act, labels) / len(labels)
        assert rel(val[i, : cnt[i]] + target, restricted) <= RTOL
        assert rel(loss[i], -(target * np.log(restricted)).sum()) <= RTOL


def test_lazy_adam_equals_dense_adam_when_every_row_gets_gradient():
    data = toy_data(all_features=True)
    nets = [make_net([LayerConfig(units=8)], OutputConfig(sampled=False), adam=mode, data=data)
            for mode in ("lazy", "dense")]
    for step in range(5):
        rows = np.roll(ROWS[1:], step)  # labelled samples only: every row gets gradient
        for net in nets:
            net.train_batch(rows)
    for lazy, dense in zip(nets[0].layers, nets[1].layers, strict=True):
        assert np.array_equal(lazy.w, dense.w) and np.array_equal(lazy.b, dense.b)
        assert np.array_equal(lazy.row_step, dense.row_step)


def test_lazy_adam_corrects_each_row_by_its_own_step_count():
    rng = np.random.default_rng(2)
    rows, cols = 6, 4
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    row_step = np.zeros(rows, np.int64)
    stamp = np.full(rows, -1, np.int64)
    empty = np.zeros(0, np.float32)
    history = []
    for step in range(1, 11):
        g = rng.standard_normal((rows, cols)).astype(np.float32)
        g[2:] = 0.0 if step < 10 else g[2:]  # rows 2.. get their first gradient at step 10
        stamp[:] = -1
        stamp[(g != 0).any(axis=1)] = step
        history.append(g.copy())
        adam_rows_serial(w, g, m, v, empty, empty, empty, empty, row_step, stamp, step, True,
                         LR, B1, B2, EPS, bias_correction(B1, B2, 11))
        assert not g.any(), "the accumulator of every updated row is zeroed"
    assert list(row_step) == [10, 10, 1, 1, 1, 1]
    w0 = w.copy()  # rows 2..: exactly one fresh Adam step (bias-corrected as step 1)
    rng = np.random.default_rng(2)
    w_start = rng.standard_normal((rows, cols)).astype(np.float32)
    expected = adam_first_step(w_start[2:].astype(np.float64), history[-1][2:].astype(np.float64),
                               np.ones(rows - 2, bool), LR, B1, B2, EPS)
    assert rel(w0[2:], expected) <= RTOL
