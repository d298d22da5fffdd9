"""Candidate samplers of the sampled-softmax baseline, driven by a checkpointable generator.

TensorFlow's ``tf.random.*_candidate_sampler`` ops keep their RNG state inside the op kernel (the
seed is an attribute), so a resumed run cannot continue their stream. We sample the same way they
do with ``unique=True`` -- draws proportional to ``p`` with duplicates rejected, i.e. successive
sampling without replacement -- through the Gumbel-top-k identity: the ``S`` largest of
``log p_i + Gumbel_i`` are such a sample. The Gumbel noise comes from a ``tf.random.Generator``
whose state is part of the checkpoint.

Expected counts (the ``Q`` of sampled softmax, whose log is subtracted from the logits) follow
TensorFlow's formula for unique sampling, ``q_i = 1 - (1 - p_i)^T`` with ``T`` the number of
draws; we use the ``T`` at which ``sum_i q_i = S`` (TF uses the realised number of draws, which
concentrates there), computed once per run. For the uniform sampler ``q`` is the same for every
class, so it cancels in the softmax.

Distributions over the L classes:

* ``uniform``: ``p_i = 1/L``.
* ``log-uniform``: Zipf-like ``p(r) = log((r+2)/(r+1)) / log(L+1)`` over the class's rank ``r`` by
  training frequency (most frequent first). TF's log-uniform sampler assumes classes are numbered
  by decreasing frequency; XC labels are not, so we assign ``p`` by rank -- the same as relabelling
  the classes by frequency, without permuting weights or predictions.
* ``unigram``: ``p_i`` proportional to training count + 1 (add-one, so every class can be drawn
  and ``log q`` stays finite), as ``tf.random.fixed_unigram_candidate_sampler`` with counts.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["log_expected_counts", "sample_candidates", "sampler_log_probs"]


def sampler_log_probs(kind: str, label_counts: np.ndarray) -> np.ndarray:
    """Log-probabilities of one draw of a sampler.

    Parameters
    ----------
    kind : {"uniform", "log-uniform", "unigram"}
        The sampler.
    label_counts : ndarray of int, shape (L,)
        Training frequency of each class.

    Returns
    -------
    ndarray of float64, shape (L,)
        ``log p_i``; ``p`` sums to one.
    """
    n = len(label_counts)
    if kind == "uniform":
        return np.full(n, -np.log(n))
    if kind == "unigram":
        weights = label_counts.astype(np.float64) + 1.0
        return np.log(weights / weights.sum())
    if kind == "log-uniform":
        rank = np.empty(n, dtype=np.float64)
        rank[np.argsort(-label_counts, kind="stable")] = np.arange(n)
        return np.log(np.log1p(1.0 / (rank + 1.0))) - np.log(np.log(n + 1.0))
    raise ValueError(f"unknown sampler {kind!r}")


def log_expected_counts(log_p: np.ndarray, n_sampled: int) -> np.ndarray:
    """Log of the expected number of times each class is in a unique sample of ``n_sampled``.

    Parameters
    ----------
    log_p : ndarray of float64, shape (L,)
        Log-probabilities of one draw.
    n_sampled : int
        Sample size ``S`` (1 <= S <= L).

    Returns
    -------
    ndarray of float32, shape (L,)
        ``log q_i`` with ``q_i = 1 - (1 - p_i)^T`` and ``sum_i q_i = S`` (all zeros when S = L:
        every class is then in every sample).
    """
    if n_sampled >= len(log_p):
        return np.zeros(len(log_p), dtype=np.float32)
    log1m_p = np.log1p(-np.exp(log_p))

    def expected(tries: float) -> float:
        return float(-np.expm1(tries * log1m_p).sum())

    low, high = float(n_sampled), float(n_sampled)
    while expected(high) < n_sampled:
        high *= 2.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if expected(mid) < n_sampled else (low, mid)
    q = -np.expm1(high * log1m_p)
    return np.log(q).astype(np.float32)


def sample_candidates(
    generator: tf.random.Generator, log_p: tf.Tensor, n_sampled: int
) -> tf.Tensor:
    """Draw ``n_sampled`` distinct classes, successively proportional to ``exp(log_p)``.

    Parameters
    ----------
    generator : tf.random.Generator
        Source of the Gumbel noise (advanced by L draws).
    log_p : tf.Tensor of float32, shape (L,)
        Log-probabilities of one draw.
    n_sampled : int
        Sample size S.

    Returns
    -------
    tf.Tensor of int32, shape (S,)
        The sampled classes (no duplicates, in no particular order).
    """
    u = generator.uniform(tf.shape(log_p), minval=np.finfo(np.float32).tiny, maxval=1.0)
    keys = log_p - tf.math.log(-tf.math.log(u))
    return tf.math.top_k(keys, k=n_sampled, sorted=False).indices
