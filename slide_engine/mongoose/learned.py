"""MONGOOSE's learnable SimHash: mine (query, neuron) pairs the tables get wrong, fit a linear map.

Pairs (as in the released MONGOOSE SLIDE code, ``Net.forward_full``), for each query ``q`` of a
buffer of recent hidden vectors and the layer's neurons ``w``:

- positive: ``q . w`` among the query's top ``max(pos_min_k, ceil(pos_frac * n))`` neurons
  (top 0.1% by default) **and not retrieved** by the current tables;
- negative: ``q . w`` below the query's median **and retrieved**;
- the larger set is subsampled to the size of the smaller one (balanced).

Model: a linear map ``P`` of shape (K*L, d). With ``u = tanh(beta * P q)`` and
``v = tanh(beta * P w)`` cut into L chunks of K, chunk ``l`` scores ``o_l = sum_k u_lk v_lk`` and
the loss is the logistic loss ``BCE(sigmoid(o_l), label)`` averaged over pairs and chunks (the
released ``TripletNet``). Vectors are L2-normalised first: SimHash keys are scale invariant and
unit inputs keep ``tanh`` out of saturation. ``P`` is fitted by a few Adam steps in NumPy.

Hashing: the released code hashes with ``sign(P)`` (a dense +-1 projection); ``binarize=False``
uses ``P`` itself. Either way a key bit is ``(projection_row . x > 0)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_SCORE_CHUNK = 32
"""Queries scored together: bounds the (chunk, n) float32 score block (about 86 MB at n=670K)."""


@dataclass(frozen=True)
class Pairs:
    """Balanced training pairs as row indices into a query buffer and a neuron matrix.

    Attributes
    ----------
    query : ndarray of int64, shape (p,)
    item : ndarray of int64, shape (p,)
    label : ndarray of float32, shape (p,)
        1 for positives, 0 for negatives (``p/2`` of each).
    missed_top : int
        Top pairs not retrieved, before balancing.
    retrieved_low : int
        Below-median pairs retrieved, before balancing.
    """

    query: np.ndarray
    item: np.ndarray
    label: np.ndarray
    missed_top: int
    retrieved_low: int


def mine_pairs(
    queries: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    indptr: np.ndarray,
    ids: np.ndarray,
    pos_frac: float,
    pos_min_k: int,
    rng: np.random.Generator,
) -> Pairs:
    """Positives the tables missed and negatives they retrieved, balanced.

    Parameters
    ----------
    queries : ndarray of float32, shape (m, d)
        Recent inputs of the layer.
    weights : ndarray of float32, shape (n, d)
        Neuron weight rows.
    bias : ndarray of float32, shape (n,)
        Neuron biases: pairs are ranked by the logit ``q . w + b`` (the released code scores
        ``[q | 1] . [w | b]``).
    indptr, ids : ndarray of int64, shapes (m + 1,) and (nnz,)
        CSR of the neurons the current tables retrieve for each query.
    pos_frac : float
        Share of the neurons that counts as a query's top (0.001 in MONGOOSE).
    pos_min_k : int
        Lower bound on the top size, for small layers.
    rng : numpy.random.Generator
        Used for the balancing subsample.

    Returns
    -------
    Pairs
    """
    m, n = queries.shape[0], weights.shape[0]
    k = min(n, max(pos_min_k, math.ceil(pos_frac * n)))
    mid = n // 2
    pos_q, pos_i, neg_q, neg_i = [], [], [], []
    retrieved = np.zeros(n, dtype=bool)
    for start in range(0, m, _SCORE_CHUNK):
        scores = queries[start : start + _SCORE_CHUNK] @ weights.T + bias
        tops = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        medians = np.partition(scores, mid, axis=1)[:, mid]
        for r in range(scores.shape[0]):
            q = start + r
            got = ids[indptr[q] : indptr[q + 1]]
            retrieved[got] = True
            missed = tops[r][~retrieved[tops[r]]]
            low = got[scores[r, got] < medians[r]]
            retrieved[got] = False
            pos_q.append(np.full(missed.shape[0], q, dtype=np.int64))
            pos_i.append(missed.astype(np.int64))
            neg_q.append(np.full(low.shape[0], q, dtype=np.int64))
            neg_i.append(low.astype(np.int64))
    if m == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Pairs(empty, empty, np.zeros(0, dtype=np.float32), 0, 0)
    pq, pi = np.concatenate(pos_q), np.concatenate(pos_i)
    nq, ni = np.concatenate(neg_q), np.concatenate(neg_i)
    size = min(pq.shape[0], nq.shape[0])
    keep_p = rng.choice(pq.shape[0], size, replace=False)
    keep_n = rng.choice(nq.shape[0], size, replace=False)
    return Pairs(
        query=np.concatenate([pq[keep_p], nq[keep_n]]),
        item=np.concatenate([pi[keep_p], ni[keep_n]]),
        label=np.concatenate([np.ones(size), np.zeros(size)]).astype(np.float32),
        missed_top=int(pq.shape[0]),
        retrieved_low=int(nq.shape[0]),
    )


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def loss_and_grad(
    proj: np.ndarray,
    xq: np.ndarray,
    xi: np.ndarray,
    label: np.ndarray,
    k: int,
    n_tables: int,
    beta: float,
) -> tuple[float, np.ndarray]:
    """Chunked logistic loss of a batch of pairs and its gradient in the map.

    Parameters
    ----------
    proj : ndarray of float64, shape (k * n_tables, d)
    xq, xi : ndarray of float64, shape (b, d)
        Query and neuron vectors of the pairs.
    label : ndarray, shape (b,)
        1 (should collide) or 0.
    k, n_tables : int
    beta : float
        Slope inside tanh.

    Returns
    -------
    loss : float
        ``mean over pairs and chunks of BCE(sigmoid(o), label)`` with
        ``o = sum_k tanh(beta P xq)_k tanh(beta P xi)_k`` over the chunk's K bits.
    grad : ndarray of float64, shape (k * n_tables, d)
    """
    b = xq.shape[0]
    y = np.asarray(label, dtype=np.float64)[:, None]
    u = np.tanh(beta * xq @ proj.T)
    v = np.tanh(beta * xi @ proj.T)
    o = (u * v).reshape(b, n_tables, k).sum(axis=2)
    loss = float(np.mean(np.logaddexp(0.0, o) - y * o))
    s = 1.0 / (1.0 + np.exp(-o))
    g = np.repeat((s - y) / (b * n_tables), k, axis=1)  # dloss/do of each chunk, on its K bits
    grad = (g * v * beta * (1.0 - u * u)).T @ xq + (g * u * beta * (1.0 - v * v)).T @ xi
    return loss, grad


@dataclass(frozen=True)
class FitSettings:
    """Optimiser settings of the hash-function fit.

    Attributes
    ----------
    steps : int
        Adam steps per retraining (a few: the fit runs inside the timed train_batch).
    batch : int
        Pairs per step.
    lr : float
        Adam learning rate.
    beta : float
        Slope inside ``tanh`` (1 in the released code).
    """

    steps: int = 10
    batch: int = 512
    lr: float = 0.01
    beta: float = 1.0


def fit_projection(
    proj: np.ndarray,
    k: int,
    n_tables: int,
    queries: np.ndarray,
    items: np.ndarray,
    pairs: Pairs,
    settings: FitSettings,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[float]]:
    """Fit the (K*L, d) map on labelled pairs by Adam on the chunked logistic loss.

    Parameters
    ----------
    proj : ndarray of float32, shape (k * n_tables, d)
        Starting map (the current hash functions); not modified.
    k, n_tables : int
        K bits per chunk, L chunks.
    queries : ndarray of float32, shape (m, d)
    items : ndarray of float32, shape (n, d)
    pairs : Pairs
        Rows into ``queries`` / ``items`` and labels.
    settings : FitSettings
    rng : numpy.random.Generator
        Minibatch sampling.

    Returns
    -------
    proj : ndarray of float32, shape (k * n_tables, d)
        The fitted map.
    losses : list of float
        Minibatch loss per step.
    """
    p = proj.astype(np.float64)
    # Start at unit-input scale: rows of norm sqrt(d) give P x ~ N(0, 1) for unit x.
    p *= math.sqrt(p.shape[1]) / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    m1, m2 = np.zeros_like(p), np.zeros_like(p)
    b1, b2, eps = 0.9, 0.999, 1e-8
    losses: list[float] = []
    n_pairs = pairs.label.shape[0]
    if n_pairs == 0:
        return proj.copy(), losses
    for step in range(1, settings.steps + 1):
        pick = rng.integers(0, n_pairs, min(settings.batch, n_pairs))
        xq = _unit(queries[pairs.query[pick]]).astype(np.float64)
        xi = _unit(items[pairs.item[pick]]).astype(np.float64)
        loss, grad = loss_and_grad(p, xq, xi, pairs.label[pick], k, n_tables, settings.beta)
        losses.append(loss)
        m1 = b1 * m1 + (1 - b1) * grad
        m2 = b2 * m2 + (1 - b2) * grad * grad
        p -= settings.lr * (m1 / (1 - b1**step)) / (np.sqrt(m2 / (1 - b2**step)) + eps)
    return p.astype(np.float32), losses


def hashing_projection(fitted: np.ndarray, binarize: bool) -> np.ndarray:
    """The projection the tables hash with: ``sign(P)`` (released MONGOOSE) or ``P``.

    Parameters
    ----------
    fitted : ndarray of float32, shape (K*L, d)
    binarize : bool

    Returns
    -------
    ndarray of float32, shape (K*L, d)
    """
    if binarize:
        return np.where(fitted >= 0, 1.0, -1.0).astype(np.float32)
    return fitted.astype(np.float32, copy=True)
