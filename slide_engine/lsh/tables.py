"""Compact hash tables: per table a bucket directory over one id pool (relocatable CSR).

Layout of table ``t`` (all int32 unless noted; B = buckets per table, n = neurons)::

    bucket_of[t, i]   bucket neuron i hashes to (whether or not it is stored)      (l, n)
    start[t, b]       first slot of bucket b's segment in ids[t]                     (l, B)
    size[t, b]        ids stored in bucket b (<= seg_cap[t, b] <= capacity)           (l, B)
    seg_cap[t, b]     slots reserved for bucket b                                   (l, B)
    members[t, b]     neurons currently hashing to bucket b (stored or not)          (l, B)
    ids[t, :]         the id pool                                                  (l, n_slots)
    tail[t]           first never-used slot of ids[t] (int64)                           (l,)
    rng[t]            reservoir RNG state of table t (uint64)                           (l,)

Bucket b of table t holds ``ids[t, start[t, b] : start[t, b] + size[t, b]]``. Memory is
O(l * (B + n)) instead of the reference's O(l * B * capacity): about 0.5 GB at Amazon-670K shape
(n = 670,091, l = 50, B = 2**18) against 6.7 GB.

Build (per table, O(n + B), a counting sort; tables in parallel, one thread per table): segments
are packed in bucket order with ``seg_cap = size``. Neurons are inserted in a fresh random order
per table and build (``order="random"``, the default; drawn from the table's own RNG stream, so
a build is deterministic for any thread count; the reference inserts under an OpenMP loop, which
scatters its order too) or in ascending id order (``order="ascending"``). A random order is
realised per bucket: its members in a random order of their own, which is what a uniformly
random global order gives every bucket. Capacity: FIFO keeps the last ``capacity`` neurons of a
bucket in insertion order; reservoir keeps a uniform random subset of ``capacity`` of them
(Algorithm R, seeded per table). With ascending insertion a full FIFO bucket keeps its highest
ids: at Amazon-670K shape (SimHash K=9, 512 buckets, L=25) only 19 % of the neurons are stored
in any table and none below id ~384,000; with random insertion 92 % (at initialisation).

Incremental re-insertion (MONGOOSE): for each given neuron whose bucket changed, remove it from
the old bucket (order of the others kept) and append it to the new one. A full bucket evicts its
oldest id (FIFO), or admits the newcomer with probability capacity / members and evicts a uniform
slot (reservoir). A neuron whose bucket did not change is left where it is. A segment without room
is moved, with doubled room (at most ``capacity``), to the pool's tail; when the tail is used up
the table is compacted (segments repacked tightly, contents and order kept). Ids evicted earlier
are not brought back when a removal frees a slot, so after re-insertions a bucket may hold fewer
than ``min(members, capacity)`` ids until the next build. With a capacity that never binds,
re-inserting a set of neurons leaves every bucket with the same set of ids as a full rebuild.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .rng import randint

REPLACE_FIFO = 0
REPLACE_RESERVOIR = 1
REPLACEMENTS = {"fifo": REPLACE_FIFO, "reservoir": REPLACE_RESERVOIR}
ORDER_RANDOM = 0
ORDER_ASCENDING = 1
ORDERS = {"random": ORDER_RANDOM, "ascending": ORDER_ASCENDING}
_MIN_GROWTH = 4


class TableArrays(NamedTuple):
    """The L hash tables (see the module docstring for the layout)."""

    bucket_of: np.ndarray
    start: np.ndarray
    size: np.ndarray
    seg_cap: np.ndarray
    members: np.ndarray
    ids: np.ndarray
    tail: np.ndarray
    rng: np.ndarray
    capacity: int
    replacement: int
    order: int


def allocate_tables(n_neurons: int, n_tables: int, n_buckets: int, capacity: int = 128,
                    replacement: str = "fifo", rng_states: np.ndarray | None = None,
                    slack: int | None = None, order: str = "random") -> TableArrays:
    """Allocate empty tables.

    Parameters
    ----------
    n_neurons, n_tables, n_buckets : int
        n, l and B.
    capacity : int
        Maximum ids per bucket.
    replacement : {"fifo", "reservoir"}
    rng_states : numpy.ndarray, optional
        uint64 (l,), one reservoir RNG state per table (default: zeros).
    slack : int, optional
        Extra pool slots per table for relocated segments, at least ``capacity`` (default
        ``max(n // 8, 64 * capacity)``).
    order : {"random", "ascending"}
        Insertion order of a build: a fresh seeded shuffle per table and build, or ascending ids.

    Returns
    -------
    TableArrays
    """
    if replacement not in REPLACEMENTS:
        raise ValueError(f"unknown replacement {replacement!r}; choose from {sorted(REPLACEMENTS)}")
    if order not in ORDERS:
        raise ValueError(f"unknown insertion order {order!r}; choose from {sorted(ORDERS)}")
    if min(n_neurons, n_tables, n_buckets, capacity) < 1:
        raise ValueError("n_neurons, n_tables, n_buckets and capacity must be positive")
    if slack is None:
        slack = max(n_neurons // 8, 64 * capacity)
    if slack < capacity:
        raise ValueError(f"slack ({slack}) must be at least the capacity ({capacity})")
    if rng_states is None:
        rng_states = np.zeros(n_tables, dtype=np.uint64)
    shape = (n_tables, n_buckets)
    return TableArrays(
        bucket_of=np.zeros((n_tables, n_neurons), dtype=np.int32),
        start=np.zeros(shape, dtype=np.int32), size=np.zeros(shape, dtype=np.int32),
        seg_cap=np.zeros(shape, dtype=np.int32), members=np.zeros(shape, dtype=np.int32),
        ids=np.zeros((n_tables, n_neurons + slack), dtype=np.int32),
        tail=np.zeros(n_tables, dtype=np.int64),
        rng=np.ascontiguousarray(rng_states, dtype=np.uint64),
        capacity=int(capacity), replacement=REPLACEMENTS[replacement], order=ORDERS[order])


def tables_nbytes(tables: TableArrays) -> int:
    """Bytes held by the table arrays."""
    return sum(a.nbytes for a in tables if isinstance(a, np.ndarray))


@njit(cache=True)
def _build_table(tb, t):
    bo = tb.bucket_of[t]
    members = tb.members[t]
    size = tb.size[t]
    start = tb.start[t]
    seg_cap = tb.seg_cap[t]
    ids = tb.ids[t]
    cap = tb.capacity
    members[:] = 0
    size[:] = 0
    for i in range(bo.shape[0]):
        members[bo[i]] += 1
    pos = 0
    for b in range(members.shape[0]):
        start[b] = pos
        seg_cap[b] = min(members[b], cap)
        pos += seg_cap[b]
    tb.tail[t] = pos
    if tb.order == ORDER_RANDOM:
        _fill_random_order(tb, t)
        return
    # ascending ids; ``size`` counts the members met so far (their rank) during the fill.
    for i in range(bo.shape[0]):
        b = bo[i]
        r = size[b]
        size[b] = r + 1
        if tb.replacement == REPLACE_FIFO:
            first_kept = members[b] - cap
            if r >= first_kept:
                ids[start[b] + r - max(first_kept, 0)] = i
        elif r < cap:
            ids[start[b] + r] = i
        else:
            j = randint(tb.rng, t, r + 1)
            if j < cap:
                ids[start[b] + j] = i
    for b in range(members.shape[0]):
        size[b] = min(members[b], cap)


@njit(cache=True)
def _fill_random_order(tb, t):
    # A uniformly random insertion order puts each bucket's members in a uniformly random order
    # of their own, independently across buckets; FIFO then keeps the last ``capacity`` of them
    # and reservoir a uniform subset: in both cases a uniform random subset in random order. So
    # the members are grouped by bucket (a counting sort, sequential) and each bucket's kept ids
    # drawn by a partial Fisher-Yates shuffle of its members (local), not by scattering all n
    # neurons through a global permutation (random reads of the whole table: 3x slower).
    bo = tb.bucket_of[t]
    members = tb.members[t]
    n, n_buckets = bo.shape[0], members.shape[0]
    cursor = np.empty(n_buckets, dtype=np.int64)
    off = 0
    for b in range(n_buckets):
        cursor[b] = off
        off += members[b]
    grouped = np.empty(n, dtype=np.int32)
    for i in range(n):
        b = bo[i]
        grouped[cursor[b]] = i
        cursor[b] += 1
    ids = tb.ids[t]
    cap = tb.capacity
    for b in range(n_buckets):
        m = members[b]
        lo = cursor[b] - m
        k = min(m, cap)
        s = tb.start[t, b]
        for q in range(k):
            j = lo + q + randint(tb.rng, t, m - q)
            picked = grouped[j]
            grouped[j] = grouped[lo + q]
            grouped[lo + q] = picked
            ids[s + q] = picked
        tb.size[t, b] = k


@njit(cache=True, parallel=True)
def build_tables(tables: TableArrays) -> None:
    """Rebuild every table from ``tables.bucket_of`` (parallel over tables).

    Parameters
    ----------
    tables : TableArrays
        ``bucket_of`` (l, n) must hold each neuron's bucket, in ``[0, B)`` (not checked: the
        kernels run without bounds checks); everything else is overwritten.
    """
    for t in prange(tables.ids.shape[0]):
        _build_table(tables, t)


@njit(cache=True, parallel=True)
def _stored_mask(tables):
    n = tables.bucket_of.shape[1]
    seen = np.zeros((tables.ids.shape[0], n), dtype=np.bool_)
    for t in prange(tables.ids.shape[0]):
        for b in range(tables.size.shape[1]):
            s = tables.start[t, b]
            for p in range(s, s + tables.size[t, b]):
                seen[t, tables.ids[t, p]] = True
    return seen


def table_coverage(tables: TableArrays) -> float:
    """Fraction of the n neurons stored in at least one of the L tables (O(l * n)).

    Parameters
    ----------
    tables : TableArrays

    Returns
    -------
    float
        In ``[0, 1]``: 1 when no bucket ever evicted a neuron; with full FIFO buckets filled in
        ascending order it shows the insertion bias (the low ids are in no table).
    """
    seen = _stored_mask(tables)
    return float(seen.any(axis=0).mean())


@njit(cache=True)
def _compact(tb, t):
    ids = tb.ids[t]
    old = ids[: tb.tail[t]].copy()
    pos = 0
    for b in range(tb.start.shape[1]):
        s = tb.start[t, b]
        for p in range(tb.size[t, b]):
            ids[pos + p] = old[s + p]
        tb.start[t, b] = pos
        tb.seg_cap[t, b] = tb.size[t, b]
        pos += tb.size[t, b]
    tb.tail[t] = pos


@njit(cache=True)
def _remove(tb, t, b, i):
    tb.members[t, b] -= 1
    s = tb.start[t, b]
    n = tb.size[t, b]
    ids = tb.ids[t]
    for p in range(s, s + n):
        if ids[p] == i:
            for q in range(p, s + n - 1):
                ids[q] = ids[q + 1]
            tb.size[t, b] = n - 1
            return


@njit(cache=True)
def _insert(tb, t, b, i):
    tb.members[t, b] += 1
    ids = tb.ids[t]
    n = tb.size[t, b]
    cap = tb.capacity
    if n >= cap:
        s = tb.start[t, b]
        if tb.replacement == REPLACE_FIFO:
            for q in range(s, s + n - 1):
                ids[q] = ids[q + 1]
            ids[s + n - 1] = i
        else:
            j = randint(tb.rng, t, tb.members[t, b])
            if j < cap:
                ids[s + j] = i
        return
    if n == tb.seg_cap[t, b]:
        room = min(cap, max(2 * n, _MIN_GROWTH))
        if tb.tail[t] + room > ids.shape[0]:
            _compact(tb, t)
        s = tb.start[t, b]
        dst = tb.tail[t]
        for p in range(n):
            ids[dst + p] = ids[s + p]
        tb.start[t, b] = dst
        tb.seg_cap[t, b] = room
        tb.tail[t] = dst + room
    ids[tb.start[t, b] + n] = i
    tb.size[t, b] = n + 1


@njit(cache=True)
def _reinsert_table(tb, t, rows, new_buckets):
    for r in range(rows.shape[0]):
        i = rows[r]
        old = tb.bucket_of[t, i]
        new = new_buckets[t, r]
        if old != new:
            _remove(tb, t, old, i)
            _insert(tb, t, new, i)
            tb.bucket_of[t, i] = new


@njit(cache=True, parallel=True)
def reinsert(tables: TableArrays, rows: np.ndarray, new_buckets: np.ndarray) -> None:
    """Move neurons to their new buckets without a rebuild (parallel over tables).

    Parameters
    ----------
    tables : TableArrays
    rows : numpy.ndarray
        int32 (m,), distinct neuron ids, processed in this order.
    new_buckets : numpy.ndarray
        int32 (l, m): ``new_buckets[t, r]`` is the new bucket of ``rows[r]`` in table ``t``,
        in ``[0, B)`` (e.g. from :func:`~slide_engine.lsh.hashing.hash_rows`; not checked).
    """
    # The body lives in its own function: inlined into the prange loop, numba's parfor pass
    # dropped the write to ``tables.bucket_of`` (numba 0.68).
    for t in prange(tables.ids.shape[0]):
        _reinsert_table(tables, t, rows, new_buckets)


@njit(cache=True, inline="always")
def bucket_ids(tables: TableArrays, t: int, b: int) -> np.ndarray:
    """View of the ids stored in bucket ``b`` of table ``t``: int32 (size[t, b],)."""
    s = tables.start[t, b]
    return tables.ids[t, s: s + tables.size[t, b]]
