"""The baselines' network, the engine's default: sparse input -> dense ReLU layer -> output layer.

The first layer is an embedding-style lookup (gather the rows of the batch's feature ids, scale by
the values, sum per point), so its gradient is a ``tf.IndexedSlices`` over the touched rows rather
than the dense [D, hidden] gradient of ``sparse_dense_matmul``. ``tf.gather`` +
``unsorted_segment_sum`` costs 7.6 ms CPU per forward+backward of an Amazon-670K-shaped batch
(128 points, ~75 features each) against 10.8 ms for ``tf.nn.embedding_lookup_sparse`` (which adds
a unique and SparseTensor plumbing); either is <1% of the step. Output weights are stored
[classes, hidden], the layout ``tf.nn.sampled_softmax_loss`` takes, for both models.
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["Network"]


class Network:
    """Variables and forward pass of ``D -> hidden (ReLU) -> L``.

    Parameters
    ----------
    n_features, n_labels, hidden : int
        D, L and the hidden width.
    init : {"normal", "truncated_normal"}
        "normal": N(0, init_std^2) for weights and biases (reference C++). "truncated_normal":
        normal cut at 2 std, with std ``2 / sqrt(fan_in + fan_out)``, for weights and biases of a
        layer (the published TensorFlow baselines; the engine does the same).
    init_std : float
        Standard deviation of "normal".
    generator : tf.random.Generator
        Source of the initial values.
    """

    def __init__(
        self,
        n_features: int,
        n_labels: int,
        hidden: int,
        init: str,
        init_std: float,
        generator: tf.random.Generator,
    ) -> None:
        def draw(shape: list[int], fan_in: int, fan_out: int) -> tf.Tensor:
            if init == "normal":
                return generator.normal(shape, stddev=init_std)
            return generator.truncated_normal(shape, stddev=2.0 / math.sqrt(fan_in + fan_out))

        self.w1 = tf.Variable(draw([n_features, hidden], n_features, hidden), name="w1")
        self.b1 = tf.Variable(draw([hidden], n_features, hidden), name="b1")
        self.w2 = tf.Variable(draw([n_labels, hidden], hidden, n_labels), name="w2")
        self.b2 = tf.Variable(draw([n_labels], hidden, n_labels), name="b2")

    @property
    def variables(self) -> dict[str, tf.Variable]:
        """The trainable variables by name, in a fixed order."""
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    def hidden(
        self, feat_ids: tf.Tensor, feat_vals: tf.Tensor, feat_rows: tf.Tensor, batch_size: tf.Tensor
    ) -> tf.Tensor:
        """Hidden activations of a batch.

        Parameters
        ----------
        feat_ids : tf.Tensor of int32, shape (nnz,)
        feat_vals : tf.Tensor of float32, shape (nnz,)
        feat_rows : tf.Tensor of int32, shape (nnz,)
            Batch row of each non-zero.
        batch_size : tf.Tensor of int32, scalar
            B (rows without features still get an output row).

        Returns
        -------
        tf.Tensor of float32, shape (B, hidden)
        """
        rows = tf.gather(self.w1, feat_ids) * feat_vals[:, None]
        return tf.nn.relu(tf.math.unsorted_segment_sum(rows, feat_rows, batch_size) + self.b1)

    def logits(self, hidden: tf.Tensor) -> tf.Tensor:
        """Dense logits over all classes.

        Parameters
        ----------
        hidden : tf.Tensor of float32, shape (B, hidden)

        Returns
        -------
        tf.Tensor of float32, shape (B, L)
        """
        return tf.matmul(hidden, self.w2, transpose_b=True) + self.b2
