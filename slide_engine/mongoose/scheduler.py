"""MONGOOSE's drift-triggered rebuild scheduler for one hash-sampled layer.

What is measured (as in the released MONGOOSE SLIDE code, ``LSHSampledLayer.rebuild``): every
neuron carries a ``B``-bit SimHash sketch of ``[w | b]``. ``ref[i]`` is the sketch neuron ``i``
had when it was last hashed into the tables, ``cur[i]`` its latest sketch. The flipped fraction is

    fraction = sum_i popcount(ref[i] XOR cur[i]) / (n * B)

i.e. the share of flipped bits over **all** neurons' sketch bits (not only the touched rows), and
the tables are updated when ``fraction > threshold`` (0.3 in the released SLIDE variant).

Why it is cheap: a neuron's sketch can only change if its row received a gradient. The engine
reports the rows its lazy optimiser touched after each batch (:meth:`DriftScheduler.mark`,
O(touched)); a check re-sketches only the rows touched since the previous check and updates the
flipped-bit total incrementally (O(dirty rows x B x d)), never O(n). (With a random top-up of
the active sets, as SLIDE's union policy does, most rows of a wide layer are dirty after 50
batches anyway: 0.5M of 670K on amazon670k-like.)

Hyperplanes: independent random ones by default; :meth:`DriftScheduler.reproject` switches to
given ones (the learnable hash uses its tables' own hyperplanes, see ``policy.py``).

Actions: ``"rebuild"`` (full table rebuild: every reference sketch becomes current) or
``"reinsert"`` (re-insert only the neurons touched since they were last hashed into the tables:
exactly the neurons whose reference may be stale, so the flipped total returns to 0 either way).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from slide_bench.errors import ConfigError
from slide_engine.mongoose.sketch import (
    MAX_SKETCH_BITS,
    mark_active,
    mark_rows,
    refresh_codes,
    sketch_rows,
)

ACTIONS = ("rebuild", "reinsert")


class DirtySet:
    """A set of row ids with O(1) insert and O(size) clear: flag array + member list.

    Parameters
    ----------
    n : int
        Number of rows of the layer.
    """

    def __init__(self, n: int) -> None:
        self.flags = np.zeros(n, dtype=np.uint8)
        self.members = np.empty(n, dtype=np.int64)
        self.count = 0

    def add(self, rows: np.ndarray, counts: np.ndarray | None = None) -> None:
        """Add rows; duplicates allowed.

        Parameters
        ----------
        rows : ndarray of int
            Row ids, any shape; or, with ``counts``, a (B, cap) int32 matrix of active sets.
        counts : ndarray of int32, shape (B,), optional
            Valid entries of each row of ``rows`` (the engine's active-set layout).
        """
        if counts is not None:
            self.count = mark_active(self.flags, self.members, self.count, rows, counts)
            return
        rows = np.ascontiguousarray(rows, dtype=np.int64).ravel()
        self.count = mark_rows(self.flags, self.members, self.count, rows)

    def rows(self) -> np.ndarray:
        """The members, shape (size,) int64, in insertion order (a view: copy to keep)."""
        return self.members[: self.count]

    def clear(self) -> None:
        """Empty the set in O(size)."""
        self.flags[self.members[: self.count]] = 0
        self.count = 0


@dataclass(frozen=True)
class Decision:
    """Outcome of one scheduler check.

    Attributes
    ----------
    iteration : int
        Training iteration of the check.
    fraction : float
        Flipped fraction at the check (before any action).
    resketched : int
        Rows re-sketched by this check (touched since the previous check).
    action : str
        ``"none"``, ``"rebuild"`` or ``"reinsert"``.
    rows : ndarray of int64, shape (m,)
        Neurons to re-insert for ``"reinsert"`` (empty otherwise).
    seconds : float
        Time spent in the check itself.
    """

    iteration: int
    fraction: float
    resketched: int
    action: str
    rows: np.ndarray
    seconds: float


class DriftScheduler:
    """Decide when one layer's hash tables need maintenance, from sketch drift.

    Parameters
    ----------
    weights : ndarray of float32, shape (n, d)
        The layer's weights at the time its tables were built.
    bias : ndarray of float32, shape (n,)
        The layer's bias.
    n_bits : int
        Sketch bits per neuron, 1..64 (``B``).
    threshold : float
        Flipped fraction above which the tables are updated, in (0, 1].
    check_every : int
        Iterations between checks.
    mode : str
        ``"rebuild"`` or ``"reinsert"``.
    seed : int
        Seed of the sketch hyperplanes.
    """

    def __init__(
        self,
        weights: np.ndarray,
        bias: np.ndarray,
        n_bits: int,
        threshold: float,
        check_every: int,
        mode: str,
        seed: int,
    ) -> None:
        if not 1 <= n_bits <= MAX_SKETCH_BITS:
            raise ConfigError(f"mongoose sketch bits must be in 1..64, got {n_bits}")
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"mongoose threshold must be in (0, 1], got {threshold}")
        if check_every < 1:
            raise ConfigError(f"mongoose check interval must be >= 1, got {check_every}")
        if mode not in ACTIONS:
            raise ConfigError(f"mongoose mode must be one of {ACTIONS}, got {mode!r}")
        n, d = weights.shape
        self.n_bits = n_bits
        self.threshold = threshold
        self.check_every = check_every
        self.mode = mode
        rng = np.random.default_rng([seed, 0x5C4ED])
        self.proj = rng.standard_normal((n_bits, d + 1)).astype(np.float32)
        self.ref = sketch_rows(weights, bias, self.proj, np.arange(n, dtype=np.int64))
        self.cur = self.ref.copy()
        self.flipped = 0
        self.since_check = DirtySet(n)
        self.since_tables = DirtySet(n)
        self.last_check = 0
        self.checks = 0
        self.rebuilds = 0
        self.reinserts = 0
        self.t_sched = 0.0
        self.events: list[dict[str, float | int | str]] = []

    @property
    def n_rows(self) -> int:
        """Number of neurons of the layer."""
        return self.ref.shape[0]

    def fraction(self) -> float:
        """Current flipped fraction over all neurons' sketch bits."""
        return self.flipped / (self.n_rows * self.n_bits)

    def mark(self, rows: np.ndarray, counts: np.ndarray | None = None) -> None:
        """Record rows whose weights or bias changed in this batch; O(touched).

        Parameters
        ----------
        rows : ndarray of int
            Touched neuron ids, any shape, duplicates allowed; or, with ``counts``, the batch's
            (B, cap) int32 active-set matrix.
        counts : ndarray of int32, shape (B,), optional
            Valid entries per row of ``rows``.
        """
        t0 = time.perf_counter()
        self.since_check.add(rows, counts)
        self.since_tables.add(rows, counts)
        self.t_sched += time.perf_counter() - t0

    def due(self, iteration: int) -> bool:
        """Whether a check is due at ``iteration`` (``check_every`` iterations after the last)."""
        return iteration - self.last_check >= self.check_every

    def check(self, iteration: int, weights: np.ndarray, bias: np.ndarray) -> Decision:
        """Re-sketch the rows touched since the last check and decide on maintenance.

        The caller must carry out a returned ``"rebuild"`` / ``"reinsert"`` (the reference
        sketches are advanced here, as if it had).

        Parameters
        ----------
        iteration : int
            Current training iteration.
        weights : ndarray of float32, shape (n, d)
            Current layer weights.
        bias : ndarray of float32, shape (n,)
            Current layer bias.

        Returns
        -------
        Decision
        """
        t0 = time.perf_counter()
        resketched = self._resketch(weights, bias)
        frac = self.fraction()
        action = self.mode if frac > self.threshold else "none"
        to_insert = np.empty(0, dtype=np.int64)
        if action == "rebuild":
            self.ref[:] = self.cur
            self.rebuilds += 1
        elif action == "reinsert":
            to_insert = self.since_tables.rows().copy()
            self.ref[to_insert] = self.cur[to_insert]
            self.reinserts += 1
        if action != "none":
            self.flipped = 0
            self.since_tables.clear()
        self.last_check = iteration
        self.checks += 1
        seconds = time.perf_counter() - t0
        self.t_sched += seconds
        decision = Decision(iteration, frac, resketched, action, to_insert, seconds)
        self.events.append(
            {
                "iteration": iteration,
                "wall_time": time.time(),
                "fraction": frac,
                "resketched": resketched,
                "reinserted": int(to_insert.shape[0]),
                "action": action,
                "t_check": seconds,
            }
        )
        return decision

    def reproject(self, proj: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> None:
        """Sketch with new hyperplanes from now on; re-baseline every neuron (O(n B d)).

        Called when the tables were just rebuilt under new hash functions (learned SimHash), so
        that drift is measured by hyperplanes the tables actually use.

        Parameters
        ----------
        proj : ndarray of float32, shape (B, d + 1)
            New sketch hyperplanes over ``[w | b]``.
        weights : ndarray of float32, shape (n, d)
        bias : ndarray of float32, shape (n,)
        """
        self.proj = np.ascontiguousarray(proj, dtype=np.float32)
        self.n_bits = self.proj.shape[0]
        self.cur = sketch_rows(weights, bias, self.proj, np.arange(self.n_rows, dtype=np.int64))
        self.ref = self.cur.copy()
        self.flipped = 0
        self.since_check.clear()
        self.since_tables.clear()

    def _resketch(self, weights: np.ndarray, bias: np.ndarray) -> int:
        """Re-sketch the rows touched since the last check; return how many there were."""
        rows = self.since_check.rows()
        count = rows.shape[0]
        if count:
            fresh = sketch_rows(weights, bias, self.proj, rows)
            self.flipped += refresh_codes(self.ref, self.cur, rows, fresh)
        self.since_check.clear()
        return count

    def counters(self) -> dict[str, float]:
        """Cumulative counts for curve columns: checks, rebuilds, reinserts, t_sched (s)."""
        return {
            "checks": float(self.checks),
            "rebuilds": float(self.rebuilds),
            "reinserts": float(self.reinserts),
            "t_sched": self.t_sched,
        }

    def state_dict(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays needed to resume (keys start with ``prefix``)."""
        scalars = np.array(
            [self.flipped, self.last_check, self.checks, self.rebuilds, self.reinserts],
            dtype=np.int64,
        )
        return {
            f"{prefix}proj": self.proj,
            f"{prefix}ref": self.ref,
            f"{prefix}cur": self.cur,
            f"{prefix}since_check": self.since_check.rows().copy(),
            f"{prefix}since_tables": self.since_tables.rows().copy(),
            f"{prefix}scalars": scalars,
            f"{prefix}t_sched": np.array([self.t_sched]),
        }

    def load_state_dict(self, state: dict[str, np.ndarray], prefix: str) -> None:
        """Restore from :meth:`state_dict` output."""
        self.proj = np.ascontiguousarray(state[f"{prefix}proj"], dtype=np.float32)
        self.ref = np.array(state[f"{prefix}ref"], dtype=np.uint64)
        self.cur = np.array(state[f"{prefix}cur"], dtype=np.uint64)
        self.n_bits = self.proj.shape[0]
        for dirty, key in ((self.since_check, "since_check"), (self.since_tables, "since_tables")):
            dirty.clear()
            dirty.add(state[f"{prefix}{key}"])
        flipped, last, checks, rebuilds, reinserts = (int(v) for v in state[f"{prefix}scalars"])
        self.flipped, self.last_check, self.checks = flipped, last, checks
        self.rebuilds, self.reinserts = rebuilds, reinserts
        self.t_sched = float(state[f"{prefix}t_sched"][0])
