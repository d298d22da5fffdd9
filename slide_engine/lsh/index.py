"""LSHIndex: owns the hash functions and tables of one layer; validates; does no math."""

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np

from .families import HashFunctions, make_hash_functions
from .hashing import hash_rows, hash_rows_mips, mips_norms, mips_range_m
from .rng import make_states
from .selection import (
    SelectPolicy,
    SelectScratch,
    make_policy,
    make_scratch,
    out_capacity,
    query_dense,
    query_sparse,
)
from .tables import (
    TableArrays,
    allocate_tables,
    build_tables,
    reinsert,
    table_coverage,
    tables_nbytes,
)


@contextmanager
def numba_threads(n_threads: int | None) -> Iterator[None]:
    """Run the body with ``numba.set_num_threads(n_threads)``, restoring the old value after."""
    if n_threads is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _check_weights(weights: np.ndarray, n: int, d: int) -> None:
    if weights.dtype != np.float32 or not weights.flags.c_contiguous or weights.shape != (n, d):
        raise ValueError(f"weights must be C-contiguous float32 of shape ({n}, {d}), got "
                         f"{weights.dtype} {weights.shape}")


class LSHIndex:
    """L hash tables over the rows (neurons) of a weight matrix.

    Parameters
    ----------
    n_neurons, dim : int
        Shape (n, d) of the weight matrix whose rows are indexed.
    family : {"simhash", "wta", "dwta", "minhash"}
    k, l : int
        Codes per table and tables.
    n_buckets : int
        Buckets per table (folded by mod when the packed codes address more).
    capacity : int
        Ids per bucket.
    replacement : {"fifo", "reservoir"}
    seed : int
        Seeds the hash functions, the reservoir streams and the scratch RNG streams.
    n_threads : int, optional
        Numba threads for build and re-insert (default: numba's current setting).
    order : {"random", "ascending"}
        Insertion order of a build (see :mod:`~slide_engine.lsh.tables`): a fresh seeded
        shuffle per table and build, or ascending ids (full FIFO buckets then keep high ids).
    mips : bool
        Hash for inner products (SimHash only): neuron ``i`` is stored under SimHash of
        ``[w_i, b_i, sqrt(M^2 - |w_i|^2 - b_i^2)]`` and a query ``h`` probes with
        ``[h, 1, 0]`` (Neyshabur & Srebro's simple LSH: the angle of the transformed pair is
        monotone in ``w_i . h + b_i``). The hash functions get Gaussian projections of the two
        extra coordinates (``mips_proj``); every build, rebuild, redraw and re-insert then
        needs the biases. ``M`` (:attr:`mips_m`) is the largest norm of ``[w_i, b_i]`` at the
        last full build (:meth:`build`, :meth:`redraw`, :meth:`rebuild` without ``changed``);
        an incremental :meth:`rebuild` or :meth:`reinsert` keeps it, and a neuron whose norm
        has grown past it gets the extra coordinate 0 until the next full build.
    mips_ranges : int
        mips: norm ranging (Yan et al. 2018). A full build splits the neurons by norm into this
        many equal-size groups and hashes each with its group's largest norm as its M
        (:attr:`mips_row_m`; 1: one M for all).
    **family_options
        ``packing``, ``bin_size``, ``code_bits``, ``simhash_density``, ``minhash_topk`` (see
        :func:`~slide_engine.lsh.families.make_hash_functions`).
    """

    def __init__(self, n_neurons: int, dim: int, family: str = "dwta", k: int = 6,
                 l: int = 50, n_buckets: int = 2**18, capacity: int = 128,  # noqa: E741
                 replacement: str = "fifo", seed: int = 0, n_threads: int | None = None,
                 order: str = "random", mips: bool = False, mips_ranges: int = 1,
                 **family_options: object) -> None:
        if mips and family != "simhash":
            raise ValueError(f"mips (inner-product hashing) needs family 'simhash', not "
                             f"{family!r}")
        self.n_neurons, self.dim = int(n_neurons), int(dim)
        self.mips = bool(mips)
        #: the transform's M: largest norm of [w, b] at the last full build (mips only)
        self.mips_m = 0.0
        self.mips_ranges = int(mips_ranges)
        if self.mips_ranges < 1:
            raise ValueError(f"mips_ranges must be >= 1, got {mips_ranges}")
        #: each neuron's M (float64 (n,)): its norm range's largest norm at the last full build
        self.mips_row_m = np.zeros(self.n_neurons if mips else 0, dtype=np.float64)
        self.family, self.family_options = family, dict(family_options)
        self.k, self.l, self.n_threads = int(k), int(l), n_threads
        self.seed = int(seed)
        self.hash_functions: HashFunctions = make_hash_functions(
            family, self.dim, self.k, self.l, n_buckets, self.seed, mips=self.mips,
            **family_options)
        self.tables: TableArrays = allocate_tables(
            self.n_neurons, self.l, self.hash_functions.n_buckets, capacity, replacement,
            make_states(self.seed + 1, self.l), order=order)

    def _hash(self, weights: np.ndarray, bias: np.ndarray | None, rows: np.ndarray,
              out: np.ndarray) -> None:
        if not self.mips:
            hash_rows(self.hash_functions, weights, rows, out)
            return
        hash_rows_mips(self.hash_functions, weights, self._checked_bias(bias), self.mips_row_m,
                       rows, out)

    def _checked_bias(self, bias: np.ndarray | None) -> np.ndarray:
        if bias is None:
            raise ValueError("mips tables hash [w, b]: pass the biases (bias=...)")
        if bias.dtype != np.float32 or bias.shape != (self.n_neurons,):
            raise ValueError(f"bias must be float32 of shape ({self.n_neurons},), got "
                             f"{bias.dtype} {bias.shape}")
        return bias

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables (the hash functions are small at d = 128)."""
        return tables_nbytes(self.tables)

    @property
    def coverage(self) -> float:
        """Fraction of the neurons stored in at least one table (:func:`table_coverage`)."""
        with numba_threads(self.n_threads):
            return table_coverage(self.tables)

    def build(self, weights: np.ndarray, bias: np.ndarray | None = None) -> None:
        """Hash every row of ``weights`` (float32 (n, d), C-contiguous) and rebuild all tables.

        ``bias`` float32 (n,): the neurons' biases (mips only); a full build takes ``M``.
        """
        _check_weights(weights, self.n_neurons, self.dim)
        if self.mips:
            norms = mips_norms(weights, self._checked_bias(bias))
            self.mips_row_m = mips_range_m(norms, self.mips_ranges)
            self.mips_m = float(norms.max(initial=0.0))
        rows = np.arange(self.n_neurons, dtype=np.int32)
        with numba_threads(self.n_threads):
            self._hash(weights, bias, rows, self.tables.bucket_of)
            build_tables(self.tables)

    def rebuild(self, weights: np.ndarray, changed: np.ndarray | None = None,
                bias: np.ndarray | None = None) -> None:
        """Rebuild all tables, re-hashing only the rows in ``changed`` (None: every row).

        A row whose weights did not change since the last build keeps its buckets in
        ``tables.bucket_of``, so the tables come out as a full :meth:`build` would make them
        from the same table RNG states (the fill order and FIFO/reservoir choices are the same;
        a bucket can differ only where a projection sits at zero and the summation order
        decides its sign). At Amazon-670K
        shape with lazy Adam ~21 % of the neurons change between two rebuilds 50 batches apart,
        so the hashing, 90 % of a rebuild, shrinks ~5x.

        Parameters
        ----------
        weights : numpy.ndarray
            float32 (n, d), C-contiguous: every neuron's row.
        changed : numpy.ndarray or None
            int (m,): distinct rows whose weights changed since the last build.
        bias : numpy.ndarray, optional
            float32 (n,), the biases (mips only; an incremental rebuild keeps ``M``).
        """
        if changed is None:
            self.build(weights, bias)
            return
        _check_weights(weights, self.n_neurons, self.dim)
        rows = self._checked_rows(changed)
        with numba_threads(self.n_threads):
            if rows.size:
                new_buckets = np.empty((self.l, rows.size), dtype=np.int32)
                self._hash(weights, bias, rows, new_buckets)
                self.tables.bucket_of[:, rows] = new_buckets
            build_tables(self.tables)

    def _checked_rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= self.n_neurons)):
            raise ValueError("rows must be a 1-D array of neuron ids in [0, n_neurons)")
        if np.unique(rows).size != rows.size:
            raise ValueError("rows must be distinct")
        return rows

    def redraw(self, weights: np.ndarray, seed: int, bias: np.ndarray | None = None) -> None:
        """Draw new hash functions from ``seed`` and rebuild from ``weights`` (n, d) (and
        ``bias`` (n,), mips only).

        The tables' RNG streams (insertion order, reservoir) restart from ``seed`` too, so the
        result equals a fresh index built with that seed."""
        self.seed = int(seed)
        self.tables.rng[:] = make_states(self.seed + 1, self.l)
        self.hash_functions = make_hash_functions(
            self.family, self.dim, self.k, self.l, self.hash_functions.n_buckets, self.seed,
            mips=self.mips, **self.family_options)
        self.build(weights, bias)

    def reinsert(self, weights: np.ndarray, rows: np.ndarray,
                 bias: np.ndarray | None = None) -> None:
        """Re-hash ``rows`` (distinct neuron ids, (m,)) of ``weights`` (n, d) and move them
        (``bias`` (n,): mips only; ``M`` is kept)."""
        _check_weights(weights, self.n_neurons, self.dim)
        rows = self._checked_rows(rows)
        new_buckets = np.empty((self.l, rows.size), dtype=np.int32)
        with numba_threads(self.n_threads):
            self._hash(weights, bias, rows, new_buckets)
            reinsert(self.tables, rows, new_buckets)

    def bucket(self, table: int, bucket: int) -> np.ndarray:
        """Ids stored in one bucket: int32 (size,) (a copy)."""
        s = self.tables.start[table, bucket]
        return self.tables.ids[table, s: s + self.tables.size[table, bucket]].copy()

    def make_scratch(self, n_threads: int, seed: int | None = None) -> SelectScratch:
        """Per-thread scratch for :func:`query_dense` / :func:`query_sparse` (T = n_threads)."""
        return make_scratch(self.hash_functions, self.tables, n_threads,
                            self.seed + 2 if seed is None else seed)

    def query(self, x: np.ndarray | tuple[np.ndarray, np.ndarray],
              labels: np.ndarray | None = None, policy: SelectPolicy | None = None,
              weights: np.ndarray | None = None,
              scratch: SelectScratch | None = None) -> np.ndarray:
        """Active neurons of one input, serially (a convenience for tests and tools).

        Parameters
        ----------
        x : numpy.ndarray or tuple
            Dense float32 (d,), or sparse ``(indices int32 (nnz,), values float32 (nnz,))``.
        labels : numpy.ndarray, optional
            int32 (m,) always-active neurons.
        policy : SelectPolicy, optional
            Default: union with ``min_active`` 1,000.
        weights : numpy.ndarray, optional
            float32 (n, d); required by ``exact-topk``.
        scratch : SelectScratch, optional
            Reused across calls for determinism of the RNG stream (default: a fresh one).

        Returns
        -------
        numpy.ndarray
            int32 (n_active,), labels first.
        """
        policy = make_policy() if policy is None else policy
        labels = np.zeros(0, np.int32) if labels is None else np.asarray(labels, np.int32)
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_neurons):
            raise ValueError("labels must be neuron ids in [0, n_neurons)")
        if weights is None:
            weights = np.zeros((0, self.dim), dtype=np.float32)
        scratch = self.make_scratch(1) if scratch is None else scratch
        out = np.empty(out_capacity(policy, self.tables, labels.size), dtype=np.int32)
        hf, tb = self.hash_functions, self.tables
        if isinstance(x, tuple):
            if self.mips:
                raise ValueError("mips tables take a dense query")
            idx = np.ascontiguousarray(x[0], dtype=np.int32)
            val = np.ascontiguousarray(x[1], dtype=np.float32)
            if idx.shape != val.shape or idx.ndim != 1 or (idx.size and (
                    idx[0] < 0 or idx[-1] >= self.dim or (np.diff(idx) <= 0).any())):
                raise ValueError("sparse x needs 1-D indices, strictly increasing in [0, dim), "
                                 "and values of the same shape")
            n = query_sparse(hf, tb, policy, idx, val, labels, weights, scratch, 0, out)
        else:
            x = np.ascontiguousarray(x, dtype=np.float32)
            if x.shape != (self.dim,):
                raise ValueError(f"x must have shape ({self.dim},), got {x.shape}")
            n = query_dense(hf, tb, policy, x, labels, weights, scratch, 0, out)
        return out[:n].copy()
