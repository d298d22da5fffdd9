"""MongoosePolicy: the per-layer maintenance hook the engine calls at the end of ``train_batch``.

It replaces the fixed re-insert/redraw schedule of one LSH-sampled, neuron-major layer:

1. :meth:`MongoosePolicy.observe` (learnable hash only) keeps the layer's recent inputs;
2. :meth:`MongoosePolicy.after_batch` marks the rows the optimiser touched (O(touched)); every
   ``check_every`` iterations the :class:`~slide_engine.mongoose.scheduler.DriftScheduler`
   re-sketches them and, if the flipped fraction passed the threshold, the policy rebuilds the
   tables (``mode="rebuild"``) or re-inserts the neurons touched since they were last hashed
   (``mode="reinsert"``); with ``learn`` it first refits the SimHash projections on pairs mined
   from the recent inputs, then rebuilds (new hash functions need a full build). With ``learn``
   the drift sketch uses ``sketch_bits`` of the tables' own hyperplanes (redrawn from them at
   every fit) instead of independent random ones, see :meth:`MongoosePolicy._sketch_tables`.

Everything runs inside ``train_batch``, so its cost lands in the training clock. The policy
works on an :class:`~slide_engine.lsh.LSHIndex` (``build``, ``reinsert``, ``hash_functions``).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from slide_bench.errors import ConfigError
from slide_engine.lsh import LSHIndex
from slide_engine.lsh.families import FAMILY_SIMHASH
from slide_engine.mongoose.config import MongooseConfig
from slide_engine.mongoose.learned import (
    FitSettings,
    fit_projection,
    hashing_projection,
    mine_pairs,
)
from slide_engine.mongoose.retrieval import retrieve_from_tables
from slide_engine.mongoose.scheduler import DriftScheduler
from slide_engine.mongoose.sketch import refresh_codes, sketch_rows

log = logging.getLogger("slide_engine.mongoose")

_TOTALS = ("checks", "rebuilds", "reinserts", "t_sched", "fits", "t_fit")


class MongoosePolicy:
    """Drift-triggered maintenance, optionally with learned SimHash, of one layer's tables.

    Parameters
    ----------
    config : MongooseConfig
        The layer's MONGOOSE settings.
    weights : ndarray of float32, shape (n, d)
        Neuron-major layer weights, as the tables were just built from.
    bias : ndarray of float32, shape (n,)
        Layer bias.
    index : LSHIndex
        The layer's tables (already built from ``weights``).
    seed : int
        Seeds the sketch hyperplanes and the fit's sampling.
    """

    def __init__(
        self,
        config: MongooseConfig,
        weights: np.ndarray,
        bias: np.ndarray,
        index: LSHIndex,
        seed: int,
    ) -> None:
        hf = index.hash_functions
        if config.learn and hf.family != FAMILY_SIMHASH:
            raise ConfigError("mongoose.learn needs the layer's hash family to be simhash")
        if config.learn and config.mode != "rebuild":
            raise ConfigError("mongoose.learn draws new hash functions: it needs mode=rebuild")
        self.config = config
        self.scheduler = DriftScheduler(
            weights,
            bias,
            config.sketch_bits,
            config.threshold,
            config.check_every,
            config.mode,
            seed,
        )
        self.seed = seed
        self.queries = np.zeros((config.query_buffer, weights.shape[1]), dtype=np.float32)
        self.n_seen = 0
        # The map being fitted, (K*L, d); it starts at the tables' random projections.
        self.fitted = hf.proj.T.astype(np.float32) if config.learn else np.zeros((0, 0), np.float32)
        self.fits = 0
        self.t_fit = 0.0
        self._reported: dict[str, float] = {}
        if config.learn:
            self._sketch_tables(index, weights, bias)
        self._compile(weights, bias, index)

    def _compile(self, weights: np.ndarray, bias: np.ndarray, index: LSHIndex) -> None:
        # Run every kernel once on empty input here (start-up, untimed) so that no JIT
        # compilation lands inside a timed train_batch; no state changes.
        none = np.zeros(0, dtype=np.int64)
        sched = self.scheduler
        sched.since_check.add(none)
        sched.since_check.add(np.zeros((0, 1), dtype=np.int32), np.zeros(0, dtype=np.int32))
        refresh_codes(sched.ref, sched.cur, none, np.zeros(0, dtype=np.uint64))
        sketch_rows(weights, bias, sched.proj, none)
        if self.config.learn:
            retrieve_from_tables(index.hash_functions, index.tables, self.queries[:0])

    def observe(self, inputs: np.ndarray) -> None:
        """Remember the layer's inputs of this batch (ring buffer; no-op without ``learn``).

        Parameters
        ----------
        inputs : ndarray of float32, shape (B, d)
            The batch's inputs to the layer (hidden activations).
        """
        if not self.config.learn:
            return
        size = self.queries.shape[0]
        take = inputs[-size:]
        slots = (self.n_seen + np.arange(take.shape[0])) % size
        self.queries[slots] = take
        self.n_seen += take.shape[0]

    def after_batch(
        self,
        iteration: int,
        weights: np.ndarray,
        bias: np.ndarray,
        touched: np.ndarray,
        index: LSHIndex,
        counts: np.ndarray | None = None,
    ) -> str | None:
        """Record touched rows; at check points, maintain the tables if they drifted.

        Parameters
        ----------
        iteration : int
            Iterations completed, counting this batch (from 1).
        weights : ndarray of float32, shape (n, d)
            Layer weights after this batch's update.
        bias : ndarray of float32, shape (n,)
            Layer bias after the update.
        touched : ndarray of int
            Neurons whose weights or bias this batch changed (any shape, duplicates allowed),
            or with ``counts`` the batch's (B, cap) int32 active-set matrix.
        index : LSHIndex
            The layer's tables; rebuilt, re-inserted or given new hash functions in place.
        counts : ndarray of int32, shape (B,), optional
            Valid entries per row of ``touched`` (active-set sizes).

        Returns
        -------
        str or None
            ``"rebuild"``, ``"reinsert"`` or None (nothing done).
        """
        sched = self.scheduler
        sched.mark(touched, counts)
        if not sched.due(iteration):
            return None
        decision = sched.check(iteration, weights, bias)
        if decision.action == "none":
            log.debug(
                "it %d: flipped %.4f, %d rows re-sketched: no action",
                iteration,
                decision.fraction,
                decision.resketched,
            )
            return None
        t0 = time.perf_counter()
        if self.config.learn:
            self._refit(weights, bias, index)
            index.build(weights)
            self._sketch_tables(index, weights, bias)
        elif decision.action == "rebuild":
            index.build(weights)
        else:
            index.reinsert(weights, decision.rows)
        event = sched.events[-1]
        event["t_action"] = time.perf_counter() - t0
        log.info(
            "it %d: flipped %.4f > %.4f, %d rows re-sketched: %s%s in %.3fs",
            iteration,
            decision.fraction,
            sched.threshold,
            decision.resketched,
            decision.action,
            f" ({decision.rows.shape[0]} rows)" if decision.action == "reinsert" else "",
            event["t_action"],
        )
        return decision.action

    def _refit(self, weights: np.ndarray, bias: np.ndarray, index: LSHIndex) -> None:
        t0 = time.perf_counter()
        queries = self.queries[: min(self.n_seen, self.queries.shape[0])]
        hf = index.hash_functions
        indptr, ids = retrieve_from_tables(hf, index.tables, queries)
        cfg = self.config
        rng = self._rng(0x4D6F)
        pairs = mine_pairs(queries, weights, bias, indptr, ids, cfg.pos_frac, cfg.pos_min_k, rng)
        settings = FitSettings(steps=cfg.fit_steps, batch=cfg.fit_batch, lr=cfg.fit_lr)
        self.fitted, losses = fit_projection(
            self.fitted, hf.k, hf.l, queries, weights, pairs, settings, rng
        )
        proj = hashing_projection(self.fitted, cfg.binarize)
        index.hash_functions = hf._replace(proj=np.ascontiguousarray(proj.T))
        self.fits += 1
        seconds = time.perf_counter() - t0
        self.t_fit += seconds
        self.scheduler.events[-1].update(
            {
                "pairs": int(pairs.label.shape[0]),
                "missed_top": pairs.missed_top,
                "retrieved_low": pairs.retrieved_low,
                "fit_loss_first": losses[0] if losses else float("nan"),
                "fit_loss_last": losses[-1] if losses else float("nan"),
                "t_fit": seconds,
            }
        )

    def _sketch_tables(self, index: LSHIndex, weights: np.ndarray, bias: np.ndarray) -> None:
        # A learned projection cuts through the neurons it was fitted on, so the tables go stale
        # much faster than random hyperplanes reveal (Bibtex: held-out recall@5 of the tables
        # fell from 0.9 to 0.03 within 50 steps while the random sketch showed < 20% flips).
        # From now on the sketch uses B of the tables' own hyperplanes (bias weight 0: the
        # tables hash w only).
        proj = index.hash_functions.proj.T
        n_bits = min(self.scheduler.n_bits, proj.shape[0])
        pick = self._rng(0x5C4).choice(proj.shape[0], n_bits, replace=False)
        rows = np.concatenate([proj[pick], np.zeros((pick.shape[0], 1))], axis=1)
        self.scheduler.reproject(rows.astype(np.float32), weights, bias)

    def _rng(self, salt: int) -> np.random.Generator:
        # One stream per fit, derived from the seed: nothing to checkpoint, resumes bit-exactly.
        return np.random.default_rng([self.seed, salt, self.fits])

    def install(self, index: LSHIndex) -> None:
        """Put the learned projections (after :meth:`load_state_dict`) into ``index``.

        Only the hash functions change: the caller restores (or rebuilds) the tables.
        """
        if self.fits:
            proj = hashing_projection(self.fitted, self.config.binarize)
            index.hash_functions = index.hash_functions._replace(proj=np.ascontiguousarray(proj.T))

    def totals(self) -> dict[str, float]:
        """Cumulative checks, rebuilds, reinserts, fits and seconds (t_sched, t_fit)."""
        return {**self.scheduler.counters(), "fits": float(self.fits), "t_fit": self.t_fit}

    def stats(self) -> dict[str, float]:
        """:meth:`totals` since the previous call (the harness's curve-column convention)."""
        now = self.totals()
        out = {key: value - self._reported.get(key, 0.0) for key, value in now.items()}
        self._reported = now
        return out

    def state_dict(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays needed to resume (keys start with ``prefix``)."""
        return {
            **self.scheduler.state_dict(prefix + "sched."),
            f"{prefix}queries": self.queries.copy(),
            f"{prefix}fitted": self.fitted.copy(),
            f"{prefix}counts": np.array([self.n_seen, self.fits], dtype=np.int64),
            f"{prefix}reported": np.array([self._reported.get(k, 0.0) for k in _TOTALS]),
            f"{prefix}t_fit": np.array([self.t_fit]),
        }

    def load_state_dict(self, state: dict[str, np.ndarray], prefix: str) -> None:
        """Restore from :meth:`state_dict` output (then call :meth:`install`)."""
        self.scheduler.load_state_dict(state, prefix + "sched.")
        self.queries = np.array(state[f"{prefix}queries"], dtype=np.float32)
        self.fitted = np.array(state[f"{prefix}fitted"], dtype=np.float32)
        self.n_seen, self.fits = (int(v) for v in state[f"{prefix}counts"])
        self.t_fit = float(state[f"{prefix}t_fit"][0])
        self._reported = dict(zip(_TOTALS, state[f"{prefix}reported"].tolist(), strict=True))
