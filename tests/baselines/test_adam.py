"""Oracles for the baselines' Adam: Keras 3 Adam (dense mode) and a NumPy per-row lazy Adam."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from baselines.adam import Adam

LR, B1, B2, EPS = 1e-2, 0.9, 0.999, 1e-8
ROWS, COLS = 6, 3
# touched rows per step (duplicates are summed); rows 0 and 2 every step, 5 never
STEPS = [[0, 2, 1, 1], [2, 0, 3], [0, 2], [4, 2, 0, 1]]


def gradients(seed: int = 0) -> list[tf.IndexedSlices]:
    rng = np.random.default_rng(seed)
    return [
        tf.IndexedSlices(
            tf.constant(rng.normal(size=(len(rows), COLS)).astype(np.float32)),
            tf.constant(rows, tf.int32),
            tf.constant([ROWS, COLS]),
        )
        for rows in STEPS
    ]


def start() -> np.ndarray:
    return np.random.default_rng(42).normal(size=(ROWS, COLS)).astype(np.float32)


def run_ours(lazy: bool) -> np.ndarray:
    var = tf.Variable(start())
    opt = Adam({"w": var}, LR, B1, B2, EPS, lazy=lazy, sparse_names=("w",))
    for grad in gradients():
        opt.apply([grad])
    return var.numpy()


def dedup(grad: tf.IndexedSlices) -> tf.IndexedSlices:
    rows, slot = tf.unique(grad.indices)
    values = tf.math.unsorted_segment_sum(grad.values, slot, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, grad.dense_shape)


def test_dense_mode_equals_keras_adam_fed_indexed_slices():
    """Keras 3 Adam densifies IndexedSlices: all rows' moments decay and all rows move.

    Keras squares the slice values *before* duplicate row indices are summed (``v`` gets
    ``g1^2 + g2^2``, not ``(g1 + g2)^2``); TF 1's optimiser de-duplicated first. Our dense mode
    is Adam on the summed gradient, so it equals Keras fed de-duplicated slices.
    """
    var = tf.Variable(start())
    keras_adam = keras.optimizers.Adam(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    for grad in gradients():
        keras_adam.apply_gradients([(dedup(grad), var)])
    want = var.numpy()
    got = run_ours(lazy=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(want[5], start()[5])  # zero moments: no move


def lazy_oracle() -> np.ndarray:
    w = start().astype(np.float64)
    m, v, t = np.zeros_like(w), np.zeros_like(w), np.zeros(ROWS)
    for grad in gradients():
        g = np.zeros_like(w)
        np.add.at(g, grad.indices.numpy(), grad.values.numpy())
        for r in np.unique(grad.indices.numpy()):
            t[r] += 1
            m[r] = B1 * m[r] + (1 - B1) * g[r]
            v[r] = B2 * v[r] + (1 - B2) * g[r] ** 2
            lr_t = LR * np.sqrt(1 - B2 ** t[r]) / (1 - B1 ** t[r])
            w[r] -= lr_t * m[r] / (np.sqrt(v[r]) + EPS)
    return w


def test_lazy_mode_matches_per_row_numpy_oracle():
    got = run_ours(lazy=True)
    np.testing.assert_allclose(got, lazy_oracle(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got[5], start()[5])  # never touched: never moved


def test_lazy_equals_dense_on_rows_touched_every_step_and_on_untouched_rows():
    lazy, dense = run_ours(lazy=True), run_ours(lazy=False)
    every_step, never = [0, 2], [5]
    np.testing.assert_allclose(lazy[every_step], dense[every_step], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(lazy[never], dense[never])
    assert not np.allclose(lazy[3], dense[3])  # touched once: dense kept moving it
