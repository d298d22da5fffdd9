"""Softmax losses with sparse multi-label targets (no dense [batch, labels] target matrix).

The target of a point with labels ``y`` is uniform over ``y`` (1/|y| each), as in the SLIDE paper
and engine, so its cross-entropy is ``logsumexp(z) - mean_{j in y} z_j``. A point without labels
has zero loss and no gradient, as in the engine (the batch loss is then averaged over the labelled
points, see ``baselines.trainable``).

Labels come padded: ``labels`` (B, K) with the first ``counts[i]`` entries of row ``i`` valid.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["full_softmax_loss", "label_mask", "sampled_softmax_loss", "uniform_target_xent"]

_NEG = tf.float32.min  # what tf.nn.sampled_softmax_loss adds to accidental hits (-FLT_MAX)


def label_mask(labels: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """Validity of padded label slots.

    Parameters
    ----------
    labels : tf.Tensor of int32, shape (B, K)
    counts : tf.Tensor of int32, shape (B,)

    Returns
    -------
    tf.Tensor of bool, shape (B, K)
        True where ``k < counts[b]``.
    """
    return tf.range(tf.shape(labels)[1])[None, :] < counts[:, None]


def uniform_target_xent(
    true_logits: tf.Tensor, other_logits: tf.Tensor, mask: tf.Tensor
) -> tf.Tensor:
    """Cross-entropy against a target uniform over the valid true columns.

    Parameters
    ----------
    true_logits : tf.Tensor of float32, shape (B, K)
        Logits of the (padded) true labels.
    other_logits : tf.Tensor of float32, shape (B, M)
        Logits of every other column of the softmax (must not repeat the valid true labels).
    mask : tf.Tensor of bool, shape (B, K)
        Valid true columns; padded columns are left out of the softmax and the target.

    Returns
    -------
    tf.Tensor of float32, shape (B,)
        ``logsumexp([valid true, other]) - mean(valid true)``; 0 for rows without labels.
    """
    true_in = tf.where(mask, true_logits, _NEG)
    lse = tf.reduce_logsumexp(tf.concat([true_in, other_logits], axis=1), axis=1)
    n_true = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)
    mean_true = tf.reduce_sum(tf.where(mask, true_logits, 0.0), axis=1) / tf.maximum(n_true, 1.0)
    return tf.where(n_true > 0, lse - mean_true, 0.0)


def full_softmax_loss(logits: tf.Tensor, labels: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy over all L classes with a sparse uniform multi-label target.

    The gradient is written by hand, ``(softmax - target) * upstream``, from the exponentials
    kept by the forward pass, with the target's 1/|y| subtracted at the label positions only:
    about 20% less CPU time than TensorFlow's autodiff of the same expression, which adds the
    dense gradients of logsumexp and of the label gather, each a [B, L] pass (measured at
    L = 670,091). The result is the same (checked against a NumPy float64 oracle in the tests).

    Parameters
    ----------
    logits : tf.Tensor of float32, shape (B, L)
    labels : tf.Tensor of int32, shape (B, K)
    counts : tf.Tensor of int32, shape (B,)

    Returns
    -------
    tf.Tensor of float32, shape (B,)
        ``logsumexp(logits_b) - mean_{j in y_b} logits_bj``; 0 (and no gradient) for points
        without labels.
    """
    mask = label_mask(labels, counts)
    labelled = counts > 0
    n_true = tf.maximum(tf.cast(counts, tf.float32), 1.0)

    @tf.custom_gradient
    def xent(logits: tf.Tensor) -> tf.Tensor:
        z_max = tf.reduce_max(logits, axis=1, keepdims=True)
        exps = tf.exp(logits - z_max)
        sums = tf.reduce_sum(exps, axis=1)
        lse = z_max[:, 0] + tf.math.log(sums)
        true_logits = tf.gather(logits, labels, batch_dims=1)
        mean_true = tf.reduce_sum(tf.where(mask, true_logits, 0.0), axis=1) / n_true
        loss = tf.where(labelled, lse - mean_true, 0.0)

        def grad(upstream: tf.Tensor) -> tf.Tensor:
            scale = tf.where(labelled, upstream, 0.0)
            probs = exps * (scale / sums)[:, None]
            slots = tf.where(mask)
            index = tf.stack([tf.cast(slots[:, 0], tf.int32), tf.gather_nd(labels, slots)], 1)
            return tf.tensor_scatter_nd_sub(probs, index, tf.gather(scale / n_true, slots[:, 0]))

        return loss, grad

    return xent(logits)


def sampled_softmax_loss(
    hidden: tf.Tensor,
    weights: tf.Tensor,
    biases: tf.Tensor,
    labels: tf.Tensor,
    counts: tf.Tensor,
    sampled: tf.Tensor,
    log_q: tf.Tensor,
    remove_accidental_hits: bool = True,
) -> tf.Tensor:
    """Sampled softmax with a uniform multi-label target, as ``tf.nn.sampled_softmax_loss``.

    The logits of the true labels and of the shared sampled classes are corrected by
    ``-log Q`` (expected count of the class in the sample); sampled classes that are true labels
    of a point ("accidental hits") get ``-FLT_MAX`` added for that point. With one label per point
    this is exactly ``tf.nn.sampled_softmax_loss(num_true=1)`` given the same ``sampled_values``
    (tested). Unlike it, padded label slots are masked out of the softmax and the target, so a
    point keeps target 1/|y| on each of its own labels.

    Parameters
    ----------
    hidden : tf.Tensor of float32, shape (B, d)
        Inputs of the output layer.
    weights : tf.Tensor of float32, shape (L, d)
        Output weights, one row per class.
    biases : tf.Tensor of float32, shape (L,)
    labels : tf.Tensor of int32, shape (B, K)
    counts : tf.Tensor of int32, shape (B,)
    sampled : tf.Tensor of int32, shape (S,)
        Distinct sampled classes, shared by the batch.
    log_q : tf.Tensor of float32, shape (L,)
        Log expected count of each class in a sample.
    remove_accidental_hits : bool
        Mask sampled classes that are true labels of the point (TF's default).

    Returns
    -------
    tf.Tensor of float32, shape (B,)
        Per-point loss; 0 for points without labels.
    """
    mask = label_mask(labels, counts)
    # Only valid slots are gathered, so padding never shows up as a touched row in the
    # (IndexedSlices) gradient, which lazy Adam would otherwise step with a zero gradient.
    slots = tf.where(mask)
    valid = tf.gather_nd(labels, slots)
    valid_logits = (
        tf.reduce_sum(tf.gather(hidden, slots[:, 0]) * tf.gather(weights, valid), axis=1)
        + tf.gather(biases, valid)
        - tf.gather(log_q, valid)
    )
    true_logits = tf.scatter_nd(slots, valid_logits, tf.shape(labels, out_type=tf.int64))
    sampled_logits = (
        tf.matmul(hidden, tf.gather(weights, sampled), transpose_b=True)
        + tf.gather(biases, sampled)
        - tf.gather(log_q, sampled)
    )
    if remove_accidental_hits:
        n_classes = tf.shape(log_q)[0]
        position = tf.tensor_scatter_nd_update(
            tf.fill([n_classes], -1), sampled[:, None], tf.range(tf.shape(sampled)[0])
        )
        label_pos = tf.gather(position, labels)
        hits = tf.where(mask & (label_pos >= 0))
        hit_index = tf.stack([tf.cast(hits[:, 0], tf.int32), tf.gather_nd(label_pos, hits)], 1)
        penalty = tf.scatter_nd(
            hit_index, tf.fill([tf.shape(hits)[0]], _NEG), tf.shape(sampled_logits)
        )
        sampled_logits = sampled_logits + penalty
    return uniform_target_xent(true_logits, sampled_logits, mask)
