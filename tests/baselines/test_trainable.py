"""The TF baselines as Trainables: batch layout, samplers, prediction, warm-up and resume."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from baselines.batches import make_batch
from baselines.config import BaselineConfig
from baselines.samplers import log_expected_counts, sample_candidates, sampler_log_probs
from baselines.trainable import TFSoftmaxTrainable
from slide_bench.data import XCData, generate


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", 0)


def test_make_batch_matches_a_python_loop(tiny):
    train, _ = tiny
    rows = np.array([5, 0, 1999, 17, 5])
    batch = make_batch(train, rows)
    for b, r in enumerate(rows):
        lo, hi = train.x_indptr[r], train.x_indptr[r + 1]
        mine = batch.feat_rows == b
        np.testing.assert_array_equal(batch.feat_ids[mine], train.x_indices[lo:hi])
        np.testing.assert_array_equal(batch.feat_vals[mine], train.x_values[lo:hi])
        y = train.y_indices[train.y_indptr[r] : train.y_indptr[r + 1]]
        assert batch.counts[b] == len(y)
        np.testing.assert_array_equal(batch.labels[b, : len(y)], y)
        assert np.all(batch.labels[b, len(y) :] == y[0])  # padding repeats the first label


LABEL_COUNTS = np.array([50, 1, 7, 0, 20, 3, 3, 9, 1, 30])


@pytest.mark.parametrize("kind", ["uniform", "log-uniform", "unigram"])
def test_expected_counts_sum_to_sample_size_and_match_sampling_frequencies(kind):
    log_p = sampler_log_probs(kind, LABEL_COUNTS)
    assert abs(np.exp(log_p).sum() - 1.0) < 1e-12
    q = np.exp(log_expected_counts(log_p, 4).astype(np.float64))
    assert abs(q.sum() - 4.0) < 1e-4
    gen = tf.random.Generator.from_seed(1)
    draw = tf.function(lambda: sample_candidates(gen, log_p.astype(np.float32), 4))
    draws = np.stack([draw().numpy() for _ in range(3000)])
    assert all(len(set(d)) == 4 for d in draws)  # distinct classes
    freq = np.bincount(draws.ravel(), minlength=10) / len(draws)
    # q is TF's expected-count approximation of the inclusion probability
    assert np.max(np.abs(freq - q)) < 0.06


def test_log_uniform_ranks_labels_by_training_frequency():
    ranks = np.argsort(-sampler_log_probs("log-uniform", LABEL_COUNTS), kind="stable")
    np.testing.assert_array_equal(ranks, np.argsort(-LABEL_COUNTS, kind="stable"))


def trainable(tiny, **settings) -> TFSoftmaxTrainable:
    model = TFSoftmaxTrainable(BaselineConfig(**settings), seed=3)
    model.prepare(tiny[0])
    return model


def test_predict_topk_equals_numpy_dense_scores(tiny):
    model = trainable(tiny, eval_chunk_mb=1)  # 1 MB of scores: 524 points per chunk
    test = tiny[0].take(np.arange(1200))  # three chunks, the last one short
    top = model.predict_topk(test, 5)
    w = {k: v.numpy().astype(np.float64) for k, v in model.net.variables.items()}
    x = np.zeros((test.n_points, test.n_features))
    rows = np.repeat(np.arange(test.n_points), np.diff(test.x_indptr))
    x[rows, test.x_indices] = test.x_values
    scores = np.maximum(x @ w["w1"] + w["b1"], 0) @ w["w2"].T + w["b2"]
    want = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    assert top.shape == (1200, 5) and top.dtype == np.int32
    assert np.mean(top == want) > 0.99  # float32 vs float64 near-ties may swap


@pytest.mark.parametrize(
    "settings",
    [
        {"model": "full", "adam": "dense"},
        {"model": "full", "label_feeding": "dense-float64"},
        {"model": "sampled", "adam": "lazy", "sampler": "unigram", "sample_fraction": 0.2},
        {"model": "sampled", "sampled_labels": "one", "sampler": "log-uniform"},
    ],
)
@pytest.mark.slow
def test_warmup_keeps_state_and_resume_continues_the_run(tiny, settings):
    order = np.random.default_rng(0).permutation(tiny[0].n_points)
    batches = [order[i * 128 : (i + 1) * 128] for i in range(4)]
    model = trainable(tiny, **settings)
    before = model.state_dict()
    model.warmup(batches[0])
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    losses = [model.train_batch(b) for b in batches[:2]]
    saved = model.state_dict()
    losses += [model.train_batch(b) for b in batches[2:]]
    assert np.all(np.isfinite(losses)) and model.is_finite()
    resumed = trainable(tiny, **settings)
    resumed.load_state_dict(saved)
    again = [resumed.train_batch(b) for b in batches[2:]]
    np.testing.assert_allclose(again, losses[2:], rtol=1e-6)
    final, other = model.state_dict(), resumed.state_dict()
    for key in final:
        np.testing.assert_allclose(other[key], final[key], rtol=1e-5, atol=1e-8, err_msg=key)
    stats = model.stats()
    assert stats["t_host"] < stats["t_step"]
    assert model.step.experimental_get_tracing_count() == 1  # varying nnz and K: one trace


def test_dense_float64_feed_takes_the_same_steps_as_sparse_labels(tiny):
    rows = np.arange(128)
    sparse = trainable(tiny, model="full")
    dense = trainable(tiny, model="full", label_feeding="dense-float64")
    assert sparse.train_batch(rows) == pytest.approx(dense.train_batch(rows), rel=1e-5)
    np.testing.assert_allclose(dense.net.w2.numpy(), sparse.net.w2.numpy(), rtol=1e-4, atol=1e-7)


def _without_labels(data: XCData, rows: np.ndarray) -> XCData:
    # the same points, with the labels of ``rows`` removed
    keep = np.ones(data.y_indices.size, dtype=bool)
    counts = np.diff(data.y_indptr)
    for r in rows:
        keep[data.y_indptr[r] : data.y_indptr[r + 1]] = False
        counts[r] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return XCData(data.x_indptr, data.x_indices, data.x_values, indptr, data.y_indices[keep],
                  data.n_features, data.n_labels)


@pytest.mark.parametrize("feeding", ["sparse", "dense-float64"])
def test_a_point_without_labels_gets_no_gradient(tiny, feeding):
    # NumPy oracle: mean over the labelled points of softmax cross-entropy against 1/|y| on each
    # label; an unlabelled point contributes neither loss nor gradient
    train = _without_labels(tiny[0], np.array([1, 4, 5]))
    model = TFSoftmaxTrainable(BaselineConfig(model="full", label_feeding=feeding), seed=3)
    model.prepare(train)
    rows = np.arange(8)
    with tf.GradientTape() as tape:
        loss = model.loss_fn(*model.batch_inputs(rows))
    grads = tape.gradient(loss, [model.net.w2, model.net.b2])
    w = {k: v.numpy().astype(np.float64) for k, v in model.net.variables.items()}
    x = np.zeros((rows.size, train.n_features))
    for i, r in enumerate(rows):
        lo, hi = train.x_indptr[r], train.x_indptr[r + 1]
        x[i, train.x_indices[lo:hi]] = train.x_values[lo:hi]
    h = np.maximum(x @ w["w1"] + w["b1"], 0)
    z = h @ w["w2"].T + w["b2"]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    delta = np.zeros_like(z)
    losses = []
    for i, r in enumerate(rows):
        y = train.y_indices[train.y_indptr[r] : train.y_indptr[r + 1]]
        if y.size:
            target = np.zeros(train.n_labels)
            target[y] = 1.0 / y.size
            delta[i] = p[i] - target
            losses.append(-(target[y] * np.log(p[i, y])).sum())
    n_labelled = len(losses)
    assert n_labelled == 5
    assert float(loss) == pytest.approx(np.sum(losses) / n_labelled, rel=1e-4)
    np.testing.assert_allclose(grads[0].numpy(), delta.T @ h / n_labelled, atol=1e-7, rtol=1e-3)
    np.testing.assert_allclose(grads[1].numpy(), delta.sum(axis=0) / n_labelled, atol=1e-7,
                               rtol=1e-3)
