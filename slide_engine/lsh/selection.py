"""Active-neuron selection for one sample, callable from inside a caller's ``prange`` loop.

Every policy writes the true labels first, then its own neurons, into ``out`` (int32) without
duplicates and returns the count; it never writes past ``len(out)`` (size ``out`` with
:func:`out_capacity`). Per-thread state lives in :class:`SelectScratch` rows indexed by ``tid``:
deduplication uses an int32 mark array of length n with a per-thread stamp, so a sample costs
O(active) and allocates nothing (except the exact-top-k oracle).

Policies (``SelectPolicy.kind``):

- ``union``: labels + union of the L probed buckets, topped up with random neurons to
  ``min_active`` (the reference code's default mode). The top-up is drawn per sample (uniform,
  ``topup="per-sample"``) or taken from a run of one fixed random permutation of the neurons
  that starts at an offset shared by the batch (``topup="shared"``, the reference's way): each
  sample takes the run's neurons in order, skipping those it already has, so the samples of a
  batch share most of their top-up neurons and a batch touches far fewer distinct rows.
- ``threshold``: labels + neurons found in at least ``threshold`` of the L probed buckets.
- ``vanilla``: labels, then tables probed in random order until ``budget`` neurons (paper).
- ``topk-count``: labels, then neurons by decreasing collision count up to ``budget``
  (ties: first met, tables in order).
- ``random``: labels, then uniform random neurons up to ``budget``.
- ``exact-topk``: labels, then neurons by decreasing inner product with the input up to
  ``budget`` (the oracle; O(n * d)).
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from .families import HashFunctions, hash_scratch_sizes
from .hashing import hash_dense, hash_dense_mips, hash_sparse
from .rng import make_states, randint
from .tables import TableArrays, bucket_ids

POLICY_UNION = 0
POLICY_THRESHOLD = 1
POLICY_VANILLA = 2
POLICY_TOPK_COUNT = 3
POLICY_RANDOM = 4
POLICY_EXACT_TOPK = 5
POLICIES = {"union": POLICY_UNION, "threshold": POLICY_THRESHOLD, "vanilla": POLICY_VANILLA,
            "topk-count": POLICY_TOPK_COUNT, "random": POLICY_RANDOM,
            "exact-topk": POLICY_EXACT_TOPK}
TOPUP_PER_SAMPLE = 0
TOPUP_SHARED = 1
TOPUPS = {"per-sample": TOPUP_PER_SAMPLE, "shared": TOPUP_SHARED}
_STAMP_LIMIT = np.iinfo(np.int32).max


class SelectPolicy(NamedTuple):
    """Which neurons to compute for a sample."""

    kind: int
    """One of ``POLICY_*``."""
    min_active: int
    """union: top up with random neurons to this many."""
    threshold: int
    """threshold: minimum number of tables a neuron must be found in."""
    budget: int
    """vanilla, topk-count, random, exact-topk: number of neurons (labels included)."""
    topup: int
    """union: ``TOPUP_PER_SAMPLE`` (uniform draws per sample) or ``TOPUP_SHARED`` (a run of the
    scratch's fixed permutation from the batch's offset, see :func:`start_shared_topup`)."""


def make_policy(name: str = "union", min_active: int = 1000, threshold: int = 2,
                budget: int = 1000, topup: str = "per-sample") -> SelectPolicy:
    """Validated :class:`SelectPolicy` (defaults: the reference's union with 1,000 minimum).

    Parameters
    ----------
    name : {"union", "threshold", "vanilla", "topk-count", "random", "exact-topk"}
    min_active, threshold, budget : int
        See :class:`SelectPolicy`.
    topup : {"per-sample", "shared"}
        How ``union`` fills the shortfall to ``min_active``.

    Returns
    -------
    SelectPolicy
    """
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {sorted(POLICIES)}")
    if min_active < 0 or budget < 0 or threshold < 1:
        raise ValueError("min_active and budget must be >= 0 and threshold >= 1")
    if topup not in TOPUPS:
        raise ValueError(f"unknown top-up {topup!r}; choose from {sorted(TOPUPS)}")
    return SelectPolicy(POLICIES[name], int(min_active), int(threshold), int(budget),
                        TOPUPS[topup])


class SelectScratch(NamedTuple):
    """Per-thread buffers; row ``tid`` belongs to one worker. T = threads."""

    fbuf: np.ndarray
    """float32 (T, hash_scratch_sizes(hf)[0]): hashing scratch."""
    codes: np.ndarray
    """int32 (T, k*l): hash codes."""
    buckets: np.ndarray
    """int32 (T, l): the sample's bucket per table."""
    mark: np.ndarray
    """int32 (T, n): ``mark[tid, i] == stamp[tid]`` iff neuron i is taken in this sample."""
    count: np.ndarray
    """int32 (T, n): collision counts, valid for this sample's candidates only."""
    stamp: np.ndarray
    """int32 (T,)."""
    rng: np.ndarray
    """uint64 (T,): splitmix64 state per thread."""
    cand: np.ndarray
    """int32 (T, l*capacity): distinct candidates of the probed buckets."""
    tbuf: np.ndarray
    """int32 (T, l+2): table order (vanilla) or count histogram (topk-count)."""
    perm: np.ndarray
    """int32 (n,): a fixed random permutation of the neurons (shared top-up; read only)."""
    perm_at: np.ndarray
    """int64 (2,): the current batch's offset into ``perm`` and the number of offsets drawn."""


def make_scratch(hf: HashFunctions, tables: TableArrays, n_threads: int,
                 seed: int) -> SelectScratch:
    """Allocate scratch for ``n_threads`` workers (RNG streams seeded from ``seed``).

    Parameters
    ----------
    hf : HashFunctions
    tables : TableArrays
    n_threads : int
    seed : int

    Returns
    -------
    SelectScratch
    """
    n_float, n_int = hash_scratch_sizes(hf)
    n_tables, n_neurons = tables.bucket_of.shape
    perm = np.random.default_rng([seed, 1]).permutation(n_neurons).astype(np.int32)
    return SelectScratch(
        fbuf=np.zeros((n_threads, n_float), dtype=np.float32),
        codes=np.zeros((n_threads, n_int), dtype=np.int32),
        buckets=np.zeros((n_threads, n_tables), dtype=np.int32),
        mark=np.zeros((n_threads, n_neurons), dtype=np.int32),
        count=np.zeros((n_threads, n_neurons), dtype=np.int32),
        stamp=np.zeros(n_threads, dtype=np.int32),
        rng=make_states(seed, n_threads),
        cand=np.zeros((n_threads, n_tables * tables.capacity), dtype=np.int32),
        tbuf=np.zeros((n_threads, n_tables + 2), dtype=np.int32),
        perm=perm, perm_at=np.zeros(2, dtype=np.int64))


def start_shared_topup(scr: SelectScratch, seed: int) -> None:
    """Draw the next batch's offset into ``scr.perm`` (the shared top-up; call once per batch).

    The offset is a keyed hash of ``seed`` and the number of offsets drawn so far
    (``scr.perm_at[1]``, kept with the scratch), so a resumed run draws the same offsets.
    """
    n = scr.perm.shape[0]
    draws = int(scr.perm_at[1]) + 1
    z = np.random.SeedSequence([seed, draws]).generate_state(1, dtype=np.uint64)[0]
    scr.perm_at[0] = int(z % np.uint64(max(n, 1)))
    scr.perm_at[1] = draws


def out_capacity(policy: SelectPolicy, tables: TableArrays, max_labels: int) -> int:
    """Length of an ``out`` buffer that no sample with ``<= max_labels`` labels can overflow."""
    n_tables, n_neurons = tables.bucket_of.shape
    if policy.kind in (POLICY_UNION, POLICY_THRESHOLD):
        need = max(policy.min_active, max_labels + n_tables * tables.capacity)
    else:
        need = max(policy.budget, max_labels)
    return min(need, n_neurons)


@njit(cache=True, inline="always")
def _new_stamp(scr, tid):
    s = scr.stamp[tid] + 1
    if s == _STAMP_LIMIT:
        scr.mark[tid, :] = 0
        s = 1
    scr.stamp[tid] = s
    return s


@njit(cache=True, inline="always")
def _take(mark, st, out, n_out, i):
    if mark[i] != st and n_out < out.shape[0]:
        mark[i] = st
        out[n_out] = i
        return n_out + 1
    return n_out


@njit(cache=True)
def _start(scr, tid, labels, out):
    st = _new_stamp(scr, tid)
    mark = scr.mark[tid]
    n_out = 0
    for q in range(labels.shape[0]):
        n_out = _take(mark, st, out, n_out, labels[q])
    return st, n_out


@njit(cache=True)
def _fill_random(scr, tid, st, out, n_out, target):
    mark = scr.mark[tid]
    n = mark.shape[0]
    target = min(target, n, out.shape[0])
    if target >= n:
        for i in range(n):
            n_out = _take(mark, st, out, n_out, i)
        return n_out
    while n_out < target:
        n_out = _take(mark, st, out, n_out, randint(scr.rng, tid, n))
    return n_out


@njit(cache=True)
def _fill_run(scr, tid, st, out, n_out, target):
    # the shortfall from the fixed permutation, from the batch's offset on (wrapping around),
    # skipping neurons the sample already has
    mark = scr.mark[tid]
    perm = scr.perm
    n = perm.shape[0]
    target = min(target, n, out.shape[0])
    p = scr.perm_at[0]
    while n_out < target:
        n_out = _take(mark, st, out, n_out, perm[p])
        p += 1
        if p == n:
            p = 0
    return n_out


@njit(cache=True)
def _count_candidates(tables, buckets, scr, tid):
    # Distinct ids of the probed buckets into cand, with their collision counts.
    st = _new_stamp(scr, tid)
    mark = scr.mark[tid]
    count = scr.count[tid]
    cand = scr.cand[tid]
    n_cand = 0
    for t in range(buckets.shape[0]):
        for i in bucket_ids(tables, t, buckets[t]):
            if mark[i] != st:
                mark[i] = st
                count[i] = 1
                cand[n_cand] = i
                n_cand += 1
            else:
                count[i] += 1
    return n_cand


@njit(cache=True)
def select_union(tables: TableArrays, buckets: np.ndarray, labels: np.ndarray,
                 min_active: int, scr: SelectScratch, tid: int, out: np.ndarray,
                 shared: bool = False) -> int:
    """Labels + union of the probed buckets, topped up at random to ``min_active``.

    Parameters
    ----------
    tables : TableArrays
    buckets : numpy.ndarray
        int32 (l,), the sample's bucket per table.
    labels : numpy.ndarray
        int32 (m,), neurons that must be active (empty at inference).
    min_active : int
    scr : SelectScratch
    tid : int
        Scratch row of the calling worker.
    out : numpy.ndarray
        int32 (>= out_capacity,), output.
    shared : bool
        Top up from the run of ``scr.perm`` at the batch's offset (else uniform per sample).

    Returns
    -------
    int
        Number of active neurons written to ``out``.
    """
    st, n_out = _start(scr, tid, labels, out)
    mark = scr.mark[tid]
    for t in range(buckets.shape[0]):
        for i in bucket_ids(tables, t, buckets[t]):
            n_out = _take(mark, st, out, n_out, i)
    if n_out < min_active:
        if shared:
            n_out = _fill_run(scr, tid, st, out, n_out, min_active)
        else:
            n_out = _fill_random(scr, tid, st, out, n_out, min_active)
    return n_out


@njit(cache=True)
def select_threshold(tables: TableArrays, buckets: np.ndarray, labels: np.ndarray,
                     threshold: int, scr: SelectScratch, tid: int, out: np.ndarray) -> int:
    """Labels + neurons found in at least ``threshold`` probed buckets (arguments as union)."""
    n_cand = _count_candidates(tables, buckets, scr, tid)
    st, n_out = _start(scr, tid, labels, out)
    mark = scr.mark[tid]
    count = scr.count[tid]
    cand = scr.cand[tid]
    for c in range(n_cand):
        if count[cand[c]] >= threshold:
            n_out = _take(mark, st, out, n_out, cand[c])
    return n_out


@njit(cache=True)
def select_vanilla(tables: TableArrays, buckets: np.ndarray, labels: np.ndarray, budget: int,
                   scr: SelectScratch, tid: int, out: np.ndarray) -> int:
    """Labels, then the probed buckets in random table order until ``budget`` neurons."""
    st, n_out = _start(scr, tid, labels, out)
    mark = scr.mark[tid]
    n_tables = buckets.shape[0]
    order = scr.tbuf[tid]
    for t in range(n_tables):
        order[t] = t
    for t in range(n_tables - 1, 0, -1):
        j = randint(scr.rng, tid, t + 1)
        order[t], order[j] = order[j], order[t]
    target = min(budget, out.shape[0])
    for q in range(n_tables):
        t = order[q]
        for i in bucket_ids(tables, t, buckets[t]):
            if n_out >= target:
                return n_out
            n_out = _take(mark, st, out, n_out, i)
    return n_out


@njit(cache=True)
def select_topk_count(tables: TableArrays, buckets: np.ndarray, labels: np.ndarray,
                      budget: int, scr: SelectScratch, tid: int, out: np.ndarray) -> int:
    """Labels, then neurons by decreasing collision count until ``budget`` neurons."""
    n_cand = _count_candidates(tables, buckets, scr, tid)
    count = scr.count[tid]
    cand = scr.cand[tid]
    hist = scr.tbuf[tid]
    n_tables = buckets.shape[0]
    hist[:] = 0
    for c in range(n_cand):
        hist[count[cand[c]]] += 1
    st, n_out = _start(scr, tid, labels, out)
    mark = scr.mark[tid]
    target = min(budget, out.shape[0])
    # Counting sort by count: one pass takes every level above the cut level, then the levels
    # from the cut down are scanned until the budget is met (labels among candidates shift it).
    cut = 1
    above = 0
    for level in range(n_tables, 0, -1):
        if above + hist[level] >= target - n_out:
            cut = level
            break
        above += hist[level]
    for c in range(n_cand):
        if count[cand[c]] > cut:
            n_out = _take(mark, st, out, n_out, cand[c])
    for level in range(cut, 0, -1):
        if n_out >= target:
            break
        for c in range(n_cand):
            if count[cand[c]] == level:
                n_out = _take(mark, st, out, n_out, cand[c])
                if n_out >= target:
                    break
    return n_out


@njit(cache=True)
def select_random(labels: np.ndarray, budget: int, scr: SelectScratch, tid: int,
                  out: np.ndarray) -> int:
    """Labels, then uniform random distinct neurons until ``budget`` neurons."""
    st, n_out = _start(scr, tid, labels, out)
    return _fill_random(scr, tid, st, out, n_out, budget)


@njit(cache=True)
def _take_top_scores(scores, labels, budget, scr, tid, out):
    st, n_out = _start(scr, tid, labels, out)
    mark = scr.mark[tid]
    target = min(budget, out.shape[0])
    for i in np.argsort(-scores, kind="mergesort"):
        if n_out >= target:
            break
        n_out = _take(mark, st, out, n_out, i)
    return n_out


@njit(cache=True)
def select_exact_topk(weights: np.ndarray, x: np.ndarray, labels: np.ndarray, budget: int,
                      scr: SelectScratch, tid: int, out: np.ndarray) -> int:
    """Labels, then neurons by decreasing ``weights @ x`` (float64) until ``budget`` neurons.

    Parameters
    ----------
    weights : numpy.ndarray
        float32 (n, d).
    x : numpy.ndarray
        float32 (d,).
    labels, budget, scr, tid, out
        As in :func:`select_union`. Ties: lower id first.
    """
    scores = np.zeros(weights.shape[0])
    for i in range(weights.shape[0]):
        s = 0.0
        for j in range(x.shape[0]):
            s += np.float64(weights[i, j]) * np.float64(x[j])
        scores[i] = s
    return _take_top_scores(scores, labels, budget, scr, tid, out)


@njit(cache=True)
def select_exact_topk_sparse(weights: np.ndarray, x_idx: np.ndarray, x_val: np.ndarray,
                             labels: np.ndarray, budget: int, scr: SelectScratch, tid: int,
                             out: np.ndarray) -> int:
    """:func:`select_exact_topk` for a sparse input (x_idx int32 (nnz,), x_val float32 (nnz,))."""
    scores = np.zeros(weights.shape[0])
    for i in range(weights.shape[0]):
        s = 0.0
        for q in range(x_idx.shape[0]):
            s += np.float64(weights[i, x_idx[q]]) * np.float64(x_val[q])
        scores[i] = s
    return _take_top_scores(scores, labels, budget, scr, tid, out)


@njit(cache=True)
def select_active(policy: SelectPolicy, tables: TableArrays, buckets: np.ndarray,
                  labels: np.ndarray, scr: SelectScratch, tid: int, out: np.ndarray) -> int:
    """Dispatch on ``policy.kind`` for an already hashed sample (every policy but exact-topk).

    Parameters
    ----------
    policy : SelectPolicy
    tables, buckets, labels, scr, tid, out
        As in :func:`select_union`.

    Returns
    -------
    int
        Number of active neurons in ``out``; -1 for ``exact-topk`` (needs the input: use
        :func:`query_dense` or :func:`select_exact_topk`).
    """
    kind = policy.kind
    if kind == POLICY_UNION:
        return select_union(tables, buckets, labels, policy.min_active, scr, tid, out,
                            policy.topup == TOPUP_SHARED)
    if kind == POLICY_THRESHOLD:
        return select_threshold(tables, buckets, labels, policy.threshold, scr, tid, out)
    if kind == POLICY_VANILLA:
        return select_vanilla(tables, buckets, labels, policy.budget, scr, tid, out)
    if kind == POLICY_TOPK_COUNT:
        return select_topk_count(tables, buckets, labels, policy.budget, scr, tid, out)
    if kind == POLICY_RANDOM:
        return select_random(labels, policy.budget, scr, tid, out)
    return -1


@njit(cache=True)
def query_dense(hf: HashFunctions, tables: TableArrays, policy: SelectPolicy, x: np.ndarray,
                labels: np.ndarray, weights: np.ndarray, scr: SelectScratch, tid: int,
                out: np.ndarray) -> int:
    """Hash a dense input and select its active neurons (the engine's per-sample call).

    Tables built under the inner-product transform (``hf.mips_proj`` drawn) hash the query as
    ``[x, 1, 0]`` (:func:`~slide_engine.lsh.hashing.hash_dense_mips`).

    Parameters
    ----------
    hf : HashFunctions
    tables : TableArrays
    policy : SelectPolicy
    x : numpy.ndarray
        float32 (d,), the layer input (e.g. hidden activations).
    labels : numpy.ndarray
        int32 (m,), always active.
    weights : numpy.ndarray
        float32 (n, d), read only by ``exact-topk``.
    scr : SelectScratch
    tid : int
        The worker's scratch row.
    out : numpy.ndarray
        int32 (>= out_capacity,), output.

    Returns
    -------
    int
        Number of active neurons written to ``out``; the buckets are in ``scr.buckets[tid]``.
    """
    if policy.kind == POLICY_EXACT_TOPK:
        return select_exact_topk(weights, x, labels, policy.budget, scr, tid, out)
    if policy.kind == POLICY_RANDOM:
        return select_random(labels, policy.budget, scr, tid, out)
    if hf.mips_proj.shape[0]:  # inner-product tables: the query is hashed as [x, 1, 0]
        hash_dense_mips(hf, x, scr.fbuf[tid], scr.codes[tid], scr.buckets[tid])
    else:
        hash_dense(hf, x, scr.fbuf[tid], scr.codes[tid], scr.buckets[tid])
    return select_active(policy, tables, scr.buckets[tid], labels, scr, tid, out)


@njit(cache=True)
def query_sparse(hf: HashFunctions, tables: TableArrays, policy: SelectPolicy,
                 x_idx: np.ndarray, x_val: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                 scr: SelectScratch, tid: int, out: np.ndarray) -> int:
    """:func:`query_dense` for a sparse input (x_idx int32 (nnz,) sorted, x_val float32 (nnz,))."""
    if policy.kind == POLICY_EXACT_TOPK:
        return select_exact_topk_sparse(weights, x_idx, x_val, labels, policy.budget, scr, tid,
                                        out)
    if policy.kind == POLICY_RANDOM:
        return select_random(labels, policy.budget, scr, tid, out)
    hash_sparse(hf, x_idx, x_val, scr.fbuf[tid], scr.codes[tid], scr.buckets[tid])
    return select_active(policy, tables, scr.buckets[tid], labels, scr, tid, out)
