"""Oracles for the baselines' losses: NumPy float64 dense-label softmax, TF's sampled loss."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from baselines.batches import Batch, dense_label_matrix
from baselines.losses import full_softmax_loss, sampled_softmax_loss
from baselines.network import Network
from baselines.samplers import sample_candidates

RTOL = 1e-5


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """Largest absolute difference relative to the largest magnitude of the oracle."""
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


def padded(label_lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(B, K) labels padded with the row's first label (0 if none), and counts (B,)."""
    width = max(1, max(len(y) for y in label_lists))
    labels = np.array([(y + [y[0] if y else 0] * width)[:width] for y in label_lists], np.int32)
    return labels, np.array([len(y) for y in label_lists], np.int32)


LABELS = [[1, 4, 6], [0], [], [2, 3], [6, 5, 1, 0]]  # one point without labels
B, D, H, L = len(LABELS), 9, 4, 7


def numpy_oracle(x: np.ndarray, w1, b1, w2, b2, target: np.ndarray):
    """Loss (mean over labelled points) and gradients of the network in float64, dense targets.

    x: (B, D) dense features; target: (B, L) rows summing to 1 (or 0 for no labels).
    """
    pre = x @ w1 + b1
    h = np.maximum(pre, 0.0)
    z = h @ w2.T + b2
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    labelled = target.sum(axis=1) > 0
    n = labelled.sum()
    loss = -(target * logp).sum() / n
    dz = (np.exp(logp) - target) * labelled[:, None] / n
    dh = dz @ w2
    dpre = dh * (pre > 0)
    return loss, {"w1": x.T @ dpre, "b1": dpre.sum(0), "w2": dz.T @ h, "b2": dz.sum(0)}


def test_full_softmax_loss_and_gradients_match_dense_float64_oracle():
    rng = np.random.default_rng(3)
    x = rng.random((B, D)) * (rng.random((B, D)) < 0.5)
    net = Network(D, L, H, "normal", 0.5, tf.random.Generator.from_seed(1))
    labels, counts = padded(LABELS)
    ids = np.nonzero(x)
    with tf.GradientTape() as tape:
        h = net.hidden(
            ids[1].astype(np.int32),
            x[ids].astype(np.float32),
            ids[0].astype(np.int32),
            tf.constant(B),
        )
        losses = full_softmax_loss(net.logits(h), labels, counts)
        loss = tf.reduce_sum(losses) / float((counts > 0).sum())
    grads = dict(zip(net.variables, tape.gradient(loss, list(net.variables.values())), strict=True))
    target = dense_label_matrix(Batch(ids[1], x[ids], ids[0], labels, counts), L)
    params = {k: v.numpy().astype(np.float64) for k, v in net.variables.items()}
    want_loss, want_grads = numpy_oracle(x, **params, target=target)
    assert losses.numpy()[2] == 0.0  # the point without labels
    assert rel_err(loss.numpy(), np.array(want_loss)) <= RTOL
    assert isinstance(grads["w1"], tf.IndexedSlices)  # sparse first-layer gradient
    for name, want in want_grads.items():
        assert rel_err(tf.convert_to_tensor(grads[name]).numpy(), want) <= RTOL, name


def random_output_layer(seed: int, n_classes: int = L):
    rng = np.random.default_rng(seed)
    hidden = tf.constant(rng.normal(size=(B, H)).astype(np.float32))
    weights = tf.Variable(rng.normal(size=(n_classes, H)).astype(np.float32))
    biases = tf.Variable(rng.normal(size=n_classes).astype(np.float32))
    return hidden, weights, biases


@pytest.mark.parametrize("log_q_const", [0.0, np.log(0.37)])
def test_sampled_softmax_with_every_class_sampled_equals_full_softmax(log_q_const):
    """Uniform sampling of all L classes without replacement: the sample is a permutation of the
    classes and Q is the same for every class, so ``-log Q`` shifts every logit by one constant
    and cancels in the softmax; with accidental hits removed each class appears exactly once in
    the softmax, so the sampled loss *is* the full loss (and so are its gradients)."""
    hidden, weights, biases = random_output_layer(5)
    labels, counts = padded(LABELS)
    gen = tf.random.Generator.from_seed(0)
    sampled = sample_candidates(gen, tf.fill([L], -np.log(L).astype(np.float32)), L)
    assert sorted(sampled.numpy()) == list(range(L))
    log_q = tf.fill([L], np.float32(log_q_const))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(hidden)
        full = full_softmax_loss(
            tf.matmul(hidden, weights, transpose_b=True) + biases, labels, counts
        )
        samp = sampled_softmax_loss(hidden, weights, biases, labels, counts, sampled, log_q)
        full_sum, samp_sum = tf.reduce_sum(full), tf.reduce_sum(samp)
    assert rel_err(samp.numpy(), full.numpy()) <= RTOL
    for var in (hidden, weights, biases):
        want = tf.convert_to_tensor(tape.gradient(full_sum, var)).numpy()
        got = tf.convert_to_tensor(tape.gradient(samp_sum, var)).numpy()
        assert rel_err(got, want) <= RTOL


def test_sampled_softmax_without_hit_removal_counts_true_classes_twice():
    """With every class sampled and remove_accidental_hits=False the true labels appear twice in
    the softmax (once as true, once as sampled), so it is *not* the full softmax: the NumPy
    oracle below is a softmax over [true logits, all logits]."""
    hidden, weights, biases = random_output_layer(6)
    labels, counts = padded(LABELS)
    sampled = tf.range(L)
    got = sampled_softmax_loss(
        hidden,
        weights,
        biases,
        labels,
        counts,
        sampled,
        tf.zeros([L]),
        remove_accidental_hits=False,
    ).numpy()
    z = hidden.numpy().astype(np.float64) @ weights.numpy().T + biases.numpy()
    for i, y in enumerate(LABELS):
        if not y:
            assert got[i] == 0.0
            continue
        both = np.concatenate([z[i, y], z[i]])
        want = np.log(np.exp(both - both.max()).sum()) + both.max() - z[i, y].mean()
        assert abs(got[i] - want) <= RTOL * abs(want)
    full = full_softmax_loss(tf.constant(z, tf.float32), labels, counts).numpy()
    assert np.all(got[counts > 0] > full[counts > 0] + 1e-3)


def test_one_label_sampled_loss_equals_tf_sampled_softmax_loss():
    """num_true=1, S < L, arbitrary expected counts, accidental hits present: identical to
    tf.nn.sampled_softmax_loss given the same sampled_values."""
    n_classes, n_sampled = 50, 12
    hidden, weights, biases = random_output_layer(7, n_classes)
    rng = np.random.default_rng(8)
    true = rng.integers(0, n_classes, size=(B, 1)).astype(np.int32)
    sampled = rng.choice(n_classes, n_sampled, replace=False).astype(np.int32)
    sampled[:2] = true[:2, 0]  # force accidental hits
    q = rng.uniform(0.05, 0.9, size=n_classes).astype(np.float32)
    counts = np.ones(B, np.int32)
    ours = sampled_softmax_loss(hidden, weights, biases, true, counts, sampled, np.log(q))
    theirs = tf.nn.sampled_softmax_loss(
        weights,
        biases,
        true.astype(np.int64),
        hidden,
        n_sampled,
        n_classes,
        num_true=1,
        sampled_values=(sampled.astype(np.int64), q[true], q[sampled]),
        remove_accidental_hits=True,
    )
    assert rel_err(ours.numpy(), theirs.numpy()) <= RTOL


def test_dense_float64_feed_gives_the_same_loss_as_sparse_labels():
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(B, L)).astype(np.float32)
    labels, counts = padded(LABELS)
    target = dense_label_matrix(Batch(None, None, None, labels, counts), L)
    assert target.dtype == np.float64 and target.shape == (B, L)
    dense = tf.nn.softmax_cross_entropy_with_logits(tf.cast(target, tf.float32), logits)
    sparse = full_softmax_loss(logits, labels, counts)
    assert rel_err(dense.numpy(), sparse.numpy()) <= RTOL


def test_sampled_gradient_touches_only_true_labels_and_sampled_classes():
    """Padding (and the label-0 padding of a point without labels) is no touched row."""
    hidden, weights, biases = random_output_layer(10, n_classes=40)
    labels, counts = padded([[7, 9], [], [11]])
    sampled = tf.constant([20, 21, 9], tf.int32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(
            sampled_softmax_loss(
                hidden[:3], weights, biases, labels, counts, sampled, tf.zeros([40])
            )
        )
    grad_w, grad_b = tape.gradient(loss, [weights, biases])
    for grad in (grad_w, grad_b):
        assert isinstance(grad, tf.IndexedSlices)
        assert set(grad.indices.numpy()) == {7, 9, 11, 20, 21}
