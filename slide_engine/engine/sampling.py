"""LSH sampling of one layer: hash functions, tables, active-set selection and table maintenance.

The hashing, table and selection kernels come from :mod:`slide_engine.lsh`; this module calls
them per sample inside the engine's ``prange`` loops (each worker owns one row of the selection
scratch, indexed by ``numba.get_thread_id()``) and schedules the tables' maintenance.

Selection contract used by the engine: a sample's true labels (output layer, training only) are
the first entries of its active set, then the policy's neurons, without duplicates.

Maintenance follows :class:`~slide_engine.lsh.ReferenceSchedule` (rebuild every
``rebuild_every_samples`` training samples, redraw every ``redraw_every_samples``: the reference
code, which counts samples too),
:class:`~slide_engine.lsh.DecayingSchedule` (the paper's geometrically growing intervals) or a
:class:`~slide_engine.mongoose.MongoosePolicy` (rebuild or re-insert when the weights' sketches
drifted; optionally learned SimHash). A rebuild re-hashes every neuron with the current
functions; it is deterministic for given weights and hash functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numba
import numpy as np
from numba import njit, prange

from slide_engine.engine.config import HashConfig
from slide_engine.lsh import (
    DecayingSchedule,
    HashFunctions,
    LSHIndex,
    ReferenceSchedule,
    SelectPolicy,
    SelectScratch,
    TableArrays,
    hash_dense,
    make_policy,
    mips_norms,
    out_capacity,
    query_dense,
    query_sparse,
    select_active,
    start_shared_topup,
)
from slide_engine.lsh.selection import (
    TOPUP_SHARED,
    _fill_random,
    _fill_run,
    _new_stamp,
)
from slide_engine.mongoose import MongoosePolicy

_BUDGET_POLICIES = ("vanilla", "topk-count", "random", "exact-topk")


# ---------------------------------------------------------------- per-sample selection kernels


@njit(cache=True)
def _select_dense_one(i, hf, tables, policy, weights, scr, prev_ids, prev_cnt, prev_val,
                      prev_dense, xbuf, center, n_center, cbuckets, rows, y_indptr, y_indices,
                      with_labels, ids, cnt):
    tid = numba.get_thread_id()
    m = prev_cnt[i]
    if prev_dense:
        x = prev_val[i, :m]
    else:  # scatter the previous layer's active values into a zeroed dense input
        x = xbuf[tid]
        x[:] = 0.0
        for q in range(m):
            x[prev_ids[i, q]] = prev_val[i, q]
    r = rows[i]
    lo = y_indptr[r]
    hi = y_indptr[r + 1] if with_labels else lo
    if n_center == 0:
        cnt[i] = query_dense(hf, tables, policy, x, y_indices[lo:hi], weights, scr, tid, ids[i])
        return
    # the last n_center tables are probed with the centred query x - center (dense input only:
    # xbuf[tid] is free), the others with x itself
    c = xbuf[tid]
    for q in range(m):
        c[q] = x[q] - center[q]
    buckets = scr.buckets[tid]
    if n_center < hf.l:  # every table centred: the raw query's buckets are not needed
        hash_dense(hf, x, scr.fbuf[tid], scr.codes[tid], buckets)
    hash_dense(hf, c, scr.fbuf[tid], scr.codes[tid], cbuckets[tid])
    for t in range(hf.l - n_center, hf.l):
        buckets[t] = cbuckets[tid, t]
    cnt[i] = select_active(policy, tables, buckets, y_indices[lo:hi], scr, tid, ids[i])


@njit(cache=True)
def select_dense_serial(hf: HashFunctions, tables: TableArrays, policy: SelectPolicy,
                        weights: np.ndarray, scr: SelectScratch, prev_ids: np.ndarray,
                        prev_cnt: np.ndarray, prev_val: np.ndarray, prev_dense: bool,
                        xbuf: np.ndarray, center: np.ndarray, n_center: int,
                        cbuckets: np.ndarray, rows: np.ndarray, y_indptr: np.ndarray,
                        y_indices: np.ndarray, with_labels: bool, ids: np.ndarray,
                        cnt: np.ndarray) -> None:
    """Active sets of a layer whose input is the previous layer's activations.

    Parameters
    ----------
    hf, tables, policy, scr
        The layer's hash functions, tables, policy and selection scratch (``slide_engine.lsh``).
    weights : float32 (n_out, n_in)
        Neuron-major weights (read by the exact-top-k policy only).
    prev_ids, prev_cnt, prev_val : int32 (B, cap_in), int32 (B,), float32 (B, cap_in)
        The previous layer's activations; ``prev_dense`` when all its neurons are active.
    xbuf : float32 (T, n_in)
        Per-thread dense input scratch (the scattered input of a sampled previous layer, or the
        centred query).
    center : float32 (n_in,)
        Subtracted from the query of the last ``n_center`` tables (dense input only).
    n_center : int
        Tables probed with the centred query (0: none, the paper's hashing).
    cbuckets : int32 (T, l)
        Per-thread buckets of the centred query.
    rows : int64 (B,)
        Dataset rows of the batch; ``y_indptr``/``y_indices`` their label CSR.
    with_labels : bool
        Put the sample's labels first (output layer in training).
    ids, cnt : int32 (B, cap), int32 (B,)
        Written: active ids and counts.
    """
    for i in range(rows.shape[0]):
        _select_dense_one(i, hf, tables, policy, weights, scr, prev_ids, prev_cnt, prev_val,
                          prev_dense, xbuf, center, n_center, cbuckets, rows, y_indptr,
                          y_indices, with_labels, ids, cnt)


@njit(cache=True, parallel=True)
def select_dense_parallel(hf: HashFunctions, tables: TableArrays, policy: SelectPolicy,
                          weights: np.ndarray, scr: SelectScratch, prev_ids: np.ndarray,
                          prev_cnt: np.ndarray, prev_val: np.ndarray, prev_dense: bool,
                          xbuf: np.ndarray, center: np.ndarray, n_center: int,
                          cbuckets: np.ndarray, rows: np.ndarray, y_indptr: np.ndarray,
                          y_indices: np.ndarray, with_labels: bool, ids: np.ndarray,
                          cnt: np.ndarray) -> None:
    """Parallel twin of :func:`select_dense_serial`."""
    for i in prange(rows.shape[0]):
        _select_dense_one(i, hf, tables, policy, weights, scr, prev_ids, prev_cnt, prev_val,
                          prev_dense, xbuf, center, n_center, cbuckets, rows, y_indptr,
                          y_indices, with_labels, ids, cnt)


@njit(cache=True)
def _select_sparse_one(i, hf, tables, policy, weights, scr, rows, x_indptr, x_indices, x_values,
                       y_indptr, y_indices, with_labels, ids, cnt):
    tid = numba.get_thread_id()
    r = rows[i]
    a, b = x_indptr[r], x_indptr[r + 1]
    lo = y_indptr[r]
    hi = y_indptr[r + 1] if with_labels else lo
    cnt[i] = query_sparse(hf, tables, policy, x_indices[a:b], x_values[a:b], y_indices[lo:hi],
                          weights, scr, tid, ids[i])


@njit(cache=True)
def select_sparse_serial(hf: HashFunctions, tables: TableArrays, policy: SelectPolicy,
                         weights: np.ndarray, scr: SelectScratch, rows: np.ndarray,
                         x_indptr: np.ndarray, x_indices: np.ndarray, x_values: np.ndarray,
                         y_indptr: np.ndarray, y_indices: np.ndarray, with_labels: bool,
                         ids: np.ndarray, cnt: np.ndarray) -> None:
    """Active sets of the first layer, hashing the sparse input rows (CSR of the dataset).

    ``weights`` is float32 (n_out, D), read by exact-top-k only; other arguments as in
    :func:`select_dense_serial`.
    """
    for i in range(rows.shape[0]):
        _select_sparse_one(i, hf, tables, policy, weights, scr, rows, x_indptr, x_indices,
                           x_values, y_indptr, y_indices, with_labels, ids, cnt)


@njit(cache=True, parallel=True)
def select_sparse_parallel(hf: HashFunctions, tables: TableArrays, policy: SelectPolicy,
                           weights: np.ndarray, scr: SelectScratch, rows: np.ndarray,
                           x_indptr: np.ndarray, x_indices: np.ndarray, x_values: np.ndarray,
                           y_indptr: np.ndarray, y_indices: np.ndarray, with_labels: bool,
                           ids: np.ndarray, cnt: np.ndarray) -> None:
    """Parallel twin of :func:`select_sparse_serial`."""
    for i in prange(rows.shape[0]):
        _select_sparse_one(i, hf, tables, policy, weights, scr, rows, x_indptr, x_indices,
                           x_values, y_indptr, y_indices, with_labels, ids, cnt)


# ---------------------------------------------------------------- top-up after selection


@njit(cache=True)
def _topup_one(i, scr, shared, floor, extra, ids, cnt, found):
    # the sample's active set so far (labels, then the tables' neurons) is its deterministic
    # part S: remember |S|, mark S, then draw the uniform top-up from the other neurons
    tid = numba.get_thread_id()
    st = _new_stamp(scr, tid)
    mark = scr.mark[tid]
    out = ids[i]
    n = cnt[i]
    for a in range(n):
        mark[out[a]] = st
    found[i] = n
    target = max(floor, n + extra)
    if n < target:
        if shared:
            n = _fill_run(scr, tid, st, out, n, target)
        else:
            n = _fill_random(scr, tid, st, out, n, target)
    cnt[i] = n


@njit(cache=True)
def topup_serial(scr: SelectScratch, shared: bool, floor: int, extra: int, ids: np.ndarray,
                 cnt: np.ndarray, found: np.ndarray) -> None:
    """Append each sample's uniform top-up to its selected neurons and record where it starts.

    Parameters
    ----------
    scr : SelectScratch
        Selection scratch (marks, RNG streams, the shared run's permutation and offset).
    shared : bool
        Take the top-up from the permutation run at the batch's offset (else uniform draws).
    floor, extra : int
        A sample ends with ``max(floor, |S| + extra)`` neurons (at most the buffer's width and
        the layer's size), ``|S|`` the neurons it had.
    ids, cnt : int32 (B, cap), int32 (B,)
        Active sets (labels first, then the tables' neurons), extended in place.
    found : int32 (B,)
        Written: ``|S|``, the position of the sample's first top-up neuron.
    """
    for i in range(cnt.shape[0]):
        _topup_one(i, scr, shared, floor, extra, ids, cnt, found)


@njit(cache=True, parallel=True)
def topup_parallel(scr: SelectScratch, shared: bool, floor: int, extra: int, ids: np.ndarray,
                   cnt: np.ndarray, found: np.ndarray) -> None:
    """Parallel twin of :func:`topup_serial`."""
    for i in prange(cnt.shape[0]):
        _topup_one(i, scr, shared, floor, extra, ids, cnt, found)


@njit(cache=True)
def _append_one(i, scr, cand, ids, cnt, found):
    # the batch's drawn candidates that the sample does not hold yet, after its own neurons
    tid = numba.get_thread_id()
    st = _new_stamp(scr, tid)
    mark = scr.mark[tid]
    out = ids[i]
    n = cnt[i]
    for a in range(n):
        mark[out[a]] = st
    found[i] = n
    for c in range(cand.shape[0]):
        j = cand[c]
        if mark[j] != st and n < out.shape[0]:
            mark[j] = st
            out[n] = j
            n += 1
    cnt[i] = n


@njit(cache=True)
def append_serial(scr: SelectScratch, cand: np.ndarray, ids: np.ndarray, cnt: np.ndarray,
                  found: np.ndarray) -> None:
    """Append the batch's drawn neurons ``cand`` (int32 (C,), distinct) to each sample's
    active set, skipping those it holds; ``found`` (B,) receives where they start."""
    for i in range(cnt.shape[0]):
        _append_one(i, scr, cand, ids, cnt, found)


@njit(cache=True, parallel=True)
def append_parallel(scr: SelectScratch, cand: np.ndarray, ids: np.ndarray, cnt: np.ndarray,
                    found: np.ndarray) -> None:
    """Parallel twin of :func:`append_serial`."""
    for i in prange(cnt.shape[0]):
        _append_one(i, scr, cand, ids, cnt, found)


@njit(cache=True)
def correct_drawn_logits(found: np.ndarray, cnt: np.ndarray, ids: np.ndarray, val: np.ndarray,
                         neg_log_p: np.ndarray) -> None:
    """Add ``neg_log_p[j]`` (float32 (n,): ``-log P(neuron j drawn)``) to the logit of every
    drawn neuron ``j`` of each sample (positions ``found[i]`` to ``cnt[i]``), in place."""
    for i in range(cnt.shape[0]):
        for a in range(found[i], cnt[i]):
            val[i, a] += neg_log_p[ids[i, a]]


@njit(cache=True)
def correct_topup_logits(found: np.ndarray, cnt: np.ndarray, val: np.ndarray,
                         n_neurons: int) -> None:
    """Add the uniform top-up's log inverse inclusion probability to its logits.

    Sample ``i``'s active set is a deterministic part S (positions ``< found[i]``: labels and
    the tables' neurons, weight 1) and ``R = cnt[i] - found[i]`` neurons drawn uniformly from
    the ``n_neurons - found[i]`` others; each of those stands for ``(n_neurons - found[i]) / R``
    neurons, so its logit gets ``+ log((n_neurons - found[i]) / R)``. The softmax over the
    corrected logits has an unbiased estimate of the full softmax's normaliser, and its
    gradient with respect to the raw logits is the same ``p - t``.

    Parameters
    ----------
    found, cnt : int32 (B,)
        Start of each sample's top-up and its active count.
    val : float32 (B, cap)
        Logits, corrected in place.
    n_neurons : int
        Neurons of the layer.
    """
    for i in range(cnt.shape[0]):
        r = cnt[i] - found[i]
        if r <= 0:
            continue
        c = np.float32(np.log((n_neurons - found[i]) / r))
        for a in range(found[i], cnt[i]):
            val[i, a] += c


# ---------------------------------------------------------------- the sampler object


class LayerSampler:
    """LSH index, selection policy, scratch and maintenance schedule of one sampled layer.

    Parameters
    ----------
    cfg : HashConfig
        Family, K, L, buckets, capacity, policy and schedule.
    n_neurons, dim : int
        Neurons of the layer and the dimension of their weight vectors (the layer's input).
    is_output : bool
        Output layer: true labels join the active set in training.
    max_labels : int
        Most labels of any training point (sizes the active-set buffers).
    seed : int
        Network seed; the layer index and the draw number are mixed in.
    layer_index : int
        Position of the layer (decorrelates the layers' hash functions).
    threads : int
        Workers that will call the selection kernels (one scratch row each).
    """

    def __init__(self, cfg: HashConfig, n_neurons: int, dim: int, *, is_output: bool,
                 max_labels: int, seed: int, layer_index: int, threads: int) -> None:
        if not 0 <= cfg.center_tables <= cfg.l:  # the kernel indexes tables l - center_tables..
            raise ValueError(f"center_tables must be in [0, l={cfg.l}], got {cfg.center_tables}")
        self.cfg = cfg
        self.seed = seed
        self.layer_index = layer_index
        self.draws = 0
        budget = cfg.min_active if cfg.policy in _BUDGET_POLICIES else 0
        #: the top-up is drawn after the selection kernel, which then returns only labels and
        #: the tables' neurons (extra uniform neurons, the importance correction, the uniform
        #: phase: they need to know where the top-up starts)
        self.post_topup = (
            cfg.policy == "union"
            and (cfg.topup_extra > 0 or cfg.topup_correct or cfg.uniform_above_cos < 1.0)
        )
        min_active = 0 if self.post_topup else cfg.min_active
        self.policy = make_policy(cfg.policy, min_active, cfg.threshold, budget, cfg.topup)
        #: labels only (the uniform phase: no tables)
        self.labels_only = make_policy("random", 0, 1, 0, cfg.topup)
        #: per sample of the last selection: where its top-up starts (post_topup only)
        self.found = np.zeros(0, dtype=np.int32)
        #: whether the last training selection skipped the tables (uniform phase) / drew the
        #: ``topup_extra`` neurons (``extra_above_cos``)
        self.last_uniform = False
        self.last_extra = False
        #: log-uniform top-up: the draw's cumulative probabilities over the neurons, log(1 - p),
        #: -log P(drawn in a batch) of each neuron, batches drawn so far
        self.draw_cdf = np.zeros(0)
        self.log1m_p = np.zeros(0)
        self.neg_log_p = np.zeros(0, dtype=np.float32)
        self.cand_draws = 0
        self.schedule = (
            DecayingSchedule(cfg.decay_first_samples, cfg.decay_growth, cfg.redraw_every_samples)
            if cfg.schedule == "decay"
            else ReferenceSchedule(cfg.rebuild_every_samples, cfg.redraw_every_samples)
        )
        self.mongoose: MongoosePolicy | None = None
        self.index = LSHIndex(n_neurons, dim, cfg.family, cfg.k, cfg.l, cfg.n_buckets,
                              cfg.bucket_capacity, cfg.replacement, self._draw_seed(),
                              order=cfg.insert_order, mips=cfg.mips,
                              mips_ranges=cfg.mips_ranges, packing=cfg.packing,
                              bin_size=cfg.bin_size)
        #: mips: returns the layer's biases, float32 (n_neurons,) (set by the network)
        self.neuron_bias: Callable[[], np.ndarray] | None = None
        #: mips: full rebuilds a scheduled rebuild made because a neuron outgrew ``M``
        self.mips_full_rebuilds = 0
        self.scratch = self.index.make_scratch(threads, self._draw_seed(salt=1))
        self.capacity = out_capacity(self.policy, self.index.tables,
                                     max_labels if is_output else 0)
        if self.post_topup:
            self.capacity = min(max(self.capacity + cfg.topup_extra, cfg.min_active,
                                    max_labels + cfg.topup_extra), n_neurons)
        self.xbuf = np.zeros((threads, dim), dtype=np.float32)
        self.center = np.zeros(dim, dtype=np.float32)
        self.cbuckets = np.zeros((threads, cfg.l), dtype=np.int32)
        #: each neuron's Adam step count at the last rebuild (empty: unknown, rebuild all)
        self.built_row_step = np.zeros(0, dtype=np.int64)

    def _draw_seed(self, salt: int = 0) -> int:
        seq = np.random.SeedSequence([self.seed, self.layer_index, self.draws, salt])
        return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(2))

    # -------------------------------------------------------------- selection

    def inference_scratch(self) -> SelectScratch:
        """Fresh selection scratch for evaluation, so that scoring never advances the training
        RNG streams (a run with hashed evaluation trains exactly as one without)."""
        return self.index.make_scratch(self.scratch.rng.shape[0], self._draw_seed(salt=2))

    def select_dense(self, parallel: bool, weights: np.ndarray, prev: tuple, prev_dense: bool,
                     rows: np.ndarray, y_indptr: np.ndarray, y_indices: np.ndarray,
                     with_labels: bool, ids: np.ndarray, cnt: np.ndarray,
                     scratch: SelectScratch | None = None, center_queries: bool = False,
                     query_cos: float = float("nan")) -> None:
        """Fill ``ids``/``cnt`` (B, cap)/(B,) from ``prev = (ids, cnt, val)`` of the layer below.

        ``scratch`` defaults to the training scratch (and its RNG streams). With
        ``center_queries`` (training) the last ``cfg.center_tables`` tables are probed with each
        query minus the batch's mean query (a dense layer below only), ``cfg.topup_extra``
        uniform neurons join each sample, and the tables are skipped when ``query_cos`` (the
        batch's mean pairwise query cosine) is above ``cfg.uniform_above_cos``.
        """
        training = center_queries
        n_center = self.cfg.center_tables if training else 0
        uniform = training and self.post_topup and query_cos > self.cfg.uniform_above_cos
        if training:
            self.last_uniform = bool(uniform)
        if n_center and not uniform:
            if not prev_dense:
                raise ValueError("center_tables needs a dense layer below the sampled one")
            np.mean(prev[2][: rows.shape[0], : self.center.shape[0]], axis=0, out=self.center)
        scr = self._batch_scratch(scratch)
        fn = select_dense_parallel if parallel else select_dense_serial
        fn(self.index.hash_functions, self.index.tables,
           self.labels_only if uniform else self.policy, weights, scr, *prev, prev_dense,
           self.xbuf, self.center, 0 if uniform else n_center, self.cbuckets, rows, y_indptr,
           y_indices, with_labels, ids, cnt)
        extra_now = training and (
            self.cfg.extra_above_cos == 0.0 or query_cos > self.cfg.extra_above_cos
        )
        self._post_topup(parallel, scr, extra_now, ids, cnt, rows.shape[0])
        if training:
            self.last_extra = bool(extra_now)

    def select_sparse(self, parallel: bool, weights_t: np.ndarray, rows: np.ndarray,
                      x: tuple, y_indptr: np.ndarray, y_indices: np.ndarray, with_labels: bool,
                      ids: np.ndarray, cnt: np.ndarray,
                      scratch: SelectScratch | None = None) -> None:
        """Fill ``ids``/``cnt`` from sparse input rows ``x = (indptr, indices, values)``."""
        scr = self._batch_scratch(scratch)
        fn = select_sparse_parallel if parallel else select_sparse_serial
        fn(self.index.hash_functions, self.index.tables, self.policy, weights_t,
           scr, rows, *x, y_indptr, y_indices, with_labels, ids, cnt)
        self._post_topup(parallel, scr, False, ids, cnt, rows.shape[0])

    def set_label_counts(self, counts: np.ndarray) -> None:
        """Training frequency of each neuron's label (int (n_neurons,)) for the log-uniform
        top-up: TF's log-uniform sampler over the labels ranked by frequency (ties by id)."""
        n = self.index.n_neurons
        if counts.shape != (n,):
            raise ValueError(f"label counts: shape {counts.shape}, expected ({n},)")
        rank = np.empty(n, dtype=np.float64)
        rank[np.argsort(-counts, kind="stable")] = np.arange(n)
        p = np.log1p(1.0 / (rank + 1.0)) / np.log(n + 1.0)
        self.draw_cdf = np.cumsum(p)
        self.log1m_p = np.log1p(-p)
        s = self.cfg.topup_extra
        self.neg_log_p = (-np.log(-np.expm1(s * self.log1m_p))).astype(np.float32)

    def draw_candidates(self, advance: bool = True) -> np.ndarray:
        """The next batch's log-uniform draws: distinct neuron ids, int32 (C,), C <= topup_extra.

        :attr:`neg_log_p` holds each neuron's ``-log(1 - (1 - p)^S)``, S the number of draws
        (:meth:`set_label_counts`). Seeded by the network seed and the batch's draw number
        (resumable); without ``advance`` (evaluation) from another stream that training never
        reads.
        """
        if self.draw_cdf.shape[0] == 0:
            raise RuntimeError("the log-uniform top-up needs set_label_counts() first")
        s = self.cfg.topup_extra
        seq = np.random.SeedSequence(
            [self.seed, self.layer_index, 5 if advance else 6, self.cand_draws]
        )
        self.cand_draws += int(advance)
        u = np.random.default_rng(seq).random(s) * self.draw_cdf[-1]
        cand = np.unique(np.searchsorted(self.draw_cdf, u, side="right"))
        return np.minimum(cand, self.draw_cdf.shape[0] - 1).astype(np.int32)

    def correct(self, ids: np.ndarray, cnt: np.ndarray, val: np.ndarray,
                n_labels: np.ndarray | None = None) -> None:
        """Importance-correct the top-up logits of the last training selection in place
        (``cfg.topup_correct``; ``ids``, ``cnt``, ``val`` (B, cap), (B,), (B, cap)); with
        ``cfg.correct_labels`` also the first ``n_labels`` (int (B,)) entries, the labels."""
        found = self.found[: cnt.shape[0]]
        if self.cfg.topup_sampler == "log-uniform" and self.last_extra:
            correct_drawn_logits(found, cnt, ids, val, self.neg_log_p)
            if self.cfg.correct_labels and n_labels is not None:
                correct_drawn_logits(np.zeros_like(found), n_labels.astype(np.int32), ids, val,
                                     self.neg_log_p)
        else:
            correct_topup_logits(found, cnt, val, self.index.n_neurons)

    def _post_topup(self, parallel: bool, scr: SelectScratch, training: bool, ids: np.ndarray,
                    cnt: np.ndarray, batch: int) -> None:
        # the top-up drawn after the kernel (post_topup): to min_active, plus topup_extra in
        # training; self.found[:batch] says where each sample's top-up starts
        if not self.post_topup:
            return
        if self.found.shape[0] < batch:
            self.found = np.zeros(batch, dtype=np.int32)
        if training and self.cfg.topup_sampler == "log-uniform":
            fn = append_parallel if parallel else append_serial
            cand = self.draw_candidates(advance=scr is self.scratch)
            fn(scr, cand, ids[:batch], cnt[:batch], self.found[:batch])
            return
        extra = self.cfg.topup_extra if training else 0
        fn = topup_parallel if parallel else topup_serial
        fn(scr, self.policy.topup == TOPUP_SHARED, self.cfg.min_active, extra, ids[:batch],
           cnt[:batch], self.found[:batch])

    def _batch_scratch(self, scratch: SelectScratch | None) -> SelectScratch:
        # the scratch of one batch's selection (default: training's); a shared top-up draws
        # the batch's offset into the fixed permutation here
        scr = self.scratch if scratch is None else scratch
        if self.policy.topup == TOPUP_SHARED:
            start_shared_topup(scr, self._draw_seed(salt=3))
        return scr

    # -------------------------------------------------------------- maintenance

    def _bias(self) -> np.ndarray | None:
        # the biases the inner-product tables hash with the weights (None: angle tables)
        if not self.index.mips:
            return None
        if self.neuron_bias is None:
            raise RuntimeError("mips tables need the layer's biases: set neuron_bias first")
        return self.neuron_bias()

    def build(self, neuron_rows: np.ndarray) -> None:
        """Hash every neuron (``neuron_rows`` float32 (n_neurons, dim)) and rebuild the tables.

        The initial build: no neuron has taken an Adam step yet.
        """
        self.index.build(neuron_rows, self._bias())
        self.built_row_step = np.zeros(self.index.n_neurons, dtype=np.int64)

    def start_mongoose(self, weights: np.ndarray, bias: np.ndarray) -> None:
        """Hand maintenance to a MONGOOSE policy (schedule "mongoose"), after :meth:`build`.

        ``weights`` float32 (n_neurons, dim) and ``bias`` (n_neurons,) are the layer's arrays.
        """
        self.mongoose = MongoosePolicy(self.cfg.mongoose, weights, bias, self.index,
                                       seed=self.seed + self.layer_index)

    def maintain_mongoose(self, step: int, weights: np.ndarray, bias: np.ndarray,
                          touched: tuple[np.ndarray, np.ndarray] | None,
                          inputs: np.ndarray | None) -> int:
        """MONGOOSE maintenance after step ``step``; return the number of full rebuilds.

        Parameters
        ----------
        step : int
            The step just taken (1-based).
        weights, bias : float32 (n_neurons, dim), (n_neurons,)
            The layer after the update.
        touched : tuple or None
            ``(ids (B, cap), cnt (B,))``: the batch's active sets, the rows lazy Adam may have
            changed; None when every row changed (dense Adam).
        inputs : float32 (B, dim) or None
            The layer's dense inputs (kept by the learnable hash).
        """
        policy = self.mongoose
        if inputs is not None:
            policy.observe(inputs)
        if touched is None:
            action = policy.after_batch(step, weights, bias, np.arange(weights.shape[0]),
                                        self.index)
        else:
            action = policy.after_batch(step, weights, bias, touched[0], self.index,
                                        counts=touched[1])
        return int(action == "rebuild")

    def maintain(self, before: int, after: int, neuron_rows: Callable[[], np.ndarray],
                 row_step: np.ndarray | None = None) -> int:
        """Run the maintenance due after a batch; return the number of rebuilds (0 or 1).

        Parameters
        ----------
        before, after : int
            Training samples seen before and after the batch (the schedule counts samples).
        neuron_rows : callable
            Returns the float32 (n_neurons, dim) weight rows (a copy for the first layer).
        row_step : int64 (n_neurons,), optional
            Adam steps taken by each neuron, when a neuron's weights change only when its count
            does (lazy Adam on a neuron-major layer). A rebuild then re-hashes only the neurons
            whose count moved since the previous rebuild (:meth:`LSHIndex.rebuild`); without
            it, or at the first rebuild, every neuron is re-hashed.
        """
        action = self.schedule.action(before, after)
        if action == "redraw":
            self.draws += 1
            self.index.redraw(neuron_rows(), self._draw_seed(), self._bias())
            self._snapshot(row_step)
        elif action == "rebuild":
            self.rebuild(neuron_rows(), row_step)
        return int(action is not None)

    def rebuild(self, neuron_rows: np.ndarray, row_step: np.ndarray | None = None) -> None:
        """Rebuild the tables with the current hash functions (the schedule's "rebuild").

        ``neuron_rows`` float32 (n_neurons, dim); ``row_step`` as in :meth:`maintain`. With
        ``cfg.mips`` a rebuild that would re-hash a neuron whose norm ``|[w, b]|`` now exceeds
        its ``M`` re-hashes every neuron instead, with ``M`` (and the norm ranges) taken anew.
        """
        changed = (
            None
            if row_step is None or self.built_row_step.shape != row_step.shape
            else np.flatnonzero(row_step != self.built_row_step)
        )
        bias = self._bias()
        if (bias is not None and changed is not None and changed.size
                and np.any(mips_norms(neuron_rows, bias, changed)
                           > self.index.mips_row_m[changed])):
            changed = None
            self.mips_full_rebuilds += 1
        self.index.rebuild(neuron_rows, changed, bias)
        self._snapshot(row_step)

    def _snapshot(self, row_step: np.ndarray | None) -> None:
        self.built_row_step = (
            row_step.copy() if row_step is not None else np.zeros(0, dtype=np.int64)
        )

    # -------------------------------------------------------------- state

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays to resume bit-identically: tables, RNG streams, redraw count, the Adam step
        counts at the last rebuild (live arrays)."""
        tables = self.index.tables
        out = {prefix + "tables." + name: getattr(tables, name) for name in _TABLE}
        out[prefix + "select_rng"] = self.scratch.rng
        out[prefix + "topup_at"] = self.scratch.perm_at
        out[prefix + "draws"] = np.array([self.draws], dtype=np.int64)
        out[prefix + "built_row_step"] = self.built_row_step
        out[prefix + "cand_draws"] = np.array([self.cand_draws], dtype=np.int64)
        if self.index.mips:
            out[prefix + "mips_m"] = np.array([self.index.mips_m], dtype=np.float64)
            out[prefix + "mips_row_m"] = self.index.mips_row_m
        if self.mongoose is not None:
            out.update(self.mongoose.state_dict(prefix + "mongoose."))
        return out

    def load(self, state: Mapping[str, np.ndarray], prefix: str,
             neuron_rows: Callable[[], np.ndarray]) -> None:
        """Restore :meth:`state` output (hash functions are redrawn from the seed and draw count).

        ``neuron_rows`` is as in :meth:`maintain`; it is read only when hash functions differ
        from the current ones.
        """
        draws = int(np.asarray(state[prefix + "draws"])[0])
        if draws != self.draws:
            self.draws = draws
            self.index.redraw(neuron_rows(), self._draw_seed(), self._bias())
        tables = self.index.tables
        for name in _TABLE:
            dst = getattr(tables, name)
            src = np.asarray(state[prefix + "tables." + name])
            if src.shape != dst.shape:
                raise ValueError(f"{prefix}tables.{name}: shape {src.shape}, expected {dst.shape}")
            dst[...] = src
        rng = np.asarray(state[prefix + "select_rng"])
        n = min(rng.shape[0], self.scratch.rng.shape[0])  # a resume may use other thread counts
        self.scratch.rng[:n] = rng[:n]
        if prefix + "topup_at" in state:
            self.scratch.perm_at[:] = np.asarray(state[prefix + "topup_at"])
        # absent from checkpoints written before incremental rebuilds: rebuild all next time
        self.built_row_step = np.array(
            state.get(prefix + "built_row_step", np.zeros(0)), dtype=np.int64
        )
        self.cand_draws = int(np.asarray(state.get(prefix + "cand_draws", [0]))[0])
        if self.index.mips:  # the M the stored tables were hashed with
            if prefix + "mips_m" not in state:
                raise ValueError(f"{prefix}mips_m: absent; the state was not saved with mips")
            self.index.mips_m = float(np.asarray(state[prefix + "mips_m"])[0])
            self.index.mips_row_m[:] = np.asarray(state[prefix + "mips_row_m"])
        self.scratch.mark[...] = 0
        self.scratch.stamp[...] = 0
        if self.mongoose is not None:
            self.mongoose.load_state_dict(dict(state), prefix + "mongoose.")
            self.mongoose.install(self.index)


_TABLE = ("bucket_of", "start", "size", "seg_cap", "members", "ids", "tail", "rng")
