"""Dense SimHash codes and code-collision retrieval: what a set of L tables of K-bit keys returns.

Used by the learnable hash to know which (query, neuron) pairs the current hash functions
retrieve, and by the tests to measure recall. Two definitions of "retrieved": shares the full
K-bit key with the query in at least one of the L tables (:func:`retrieve_by_codes`, no tables
needed, bucket capacity ignored), or stored in one of the query's L buckets of the real tables
(:func:`retrieve_from_tables`, what training actually sees).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from slide_engine.lsh.families import HashFunctions, hash_scratch_sizes
from slide_engine.lsh.hashing import hash_dense
from slide_engine.lsh.tables import TableArrays, bucket_ids


def simhash_codes(x: np.ndarray, proj: np.ndarray, k: int, n_tables: int) -> np.ndarray:
    """K-bit SimHash keys of vectors under a dense projection.

    Parameters
    ----------
    x : ndarray of float32, shape (m, d)
        Vectors to hash.
    proj : ndarray of float32, shape (k * n_tables, d)
        Hyperplanes; rows ``l*k .. l*k+k-1`` make table ``l``'s key.
    k : int
        Bits per key (K).
    n_tables : int
        Number of tables (L).

    Returns
    -------
    ndarray of int64, shape (m, n_tables)
        ``key[i, l] = sum_j (proj[l*k + j] . x[i] > 0) << j``.
    """
    bits = (x @ proj.T > 0).reshape(x.shape[0], n_tables, k)
    return bits.astype(np.int64) @ (np.int64(1) << np.arange(k, dtype=np.int64))


@njit(cache=True)
def _retrieve(
    qcodes: np.ndarray, sorted_codes: np.ndarray, order: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    m, n_tables = qcodes.shape
    seen = np.zeros(n_items, dtype=np.uint8)
    indptr = np.zeros(m + 1, dtype=np.int64)
    ids = np.empty(max(16, 4 * m), dtype=np.int64)
    pos = 0
    for i in range(m):
        for t in range(n_tables):
            lo = np.searchsorted(sorted_codes[t], qcodes[i, t], side="left")
            hi = np.searchsorted(sorted_codes[t], qcodes[i, t], side="right")
            for s in range(lo, hi):
                item = order[t, s]
                if seen[item] == 0:
                    seen[item] = 1
                    if pos == ids.shape[0]:
                        grown = np.empty(2 * pos, dtype=np.int64)
                        grown[:pos] = ids
                        ids = grown
                    ids[pos] = item
                    pos += 1
        indptr[i + 1] = pos
        # Reset only what this query marked: O(retrieved), not O(n).
        for s in range(indptr[i], pos):
            seen[ids[s]] = 0
    return indptr, ids[:pos].copy()


def retrieve_by_codes(qcodes: np.ndarray, item_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Items sharing a key with each query in at least one table.

    Parameters
    ----------
    qcodes : ndarray of int64, shape (m, L)
        Query keys.
    item_codes : ndarray of int64, shape (n, L)
        Item (neuron) keys.

    Returns
    -------
    indptr : ndarray of int64, shape (m + 1,)
    ids : ndarray of int64, shape (indptr[-1],)
        CSR: the distinct items retrieved for query ``i`` are ``ids[indptr[i]:indptr[i+1]]``.
    """
    order = np.ascontiguousarray(np.argsort(item_codes, axis=0, kind="stable").T)
    sorted_codes = np.ascontiguousarray(np.take_along_axis(item_codes.T, order, axis=1))
    return _retrieve(np.ascontiguousarray(qcodes), sorted_codes, order, item_codes.shape[0])


def topk_recall(
    queries: np.ndarray, items: np.ndarray, indptr: np.ndarray, ids: np.ndarray, k: int
) -> tuple[float, float]:
    """Recall of the exact top-k inner-product items, and the mean number retrieved.

    Parameters
    ----------
    queries : ndarray of float32, shape (m, d)
    items : ndarray of float32, shape (n, d)
    indptr, ids : CSR of retrieved items per query (see :func:`retrieve_by_codes`).
    k : int
        Size of the exact top set.

    Returns
    -------
    recall : float
        Mean over queries of |top-k ∩ retrieved| / k.
    retrieved : float
        Mean number of distinct items retrieved per query.
    """
    scores = queries @ items.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    hits = 0
    for i in range(queries.shape[0]):
        hits += np.isin(top[i], ids[indptr[i] : indptr[i + 1]]).sum()
    return hits / (k * queries.shape[0]), float(np.diff(indptr).mean())


@njit(cache=True)
def _retrieve_tables(hf, tables, queries, n_float, n_int):
    m = queries.shape[0]
    n = tables.bucket_of.shape[1]
    seen = np.zeros(n, dtype=np.uint8)
    fbuf = np.empty(n_float, dtype=np.float32)
    codes = np.empty(n_int, dtype=np.int32)
    buckets = np.empty(hf.l, dtype=np.int32)
    indptr = np.zeros(m + 1, dtype=np.int64)
    ids = np.empty(max(16, 4 * m), dtype=np.int64)
    pos = 0
    for i in range(m):
        hash_dense(hf, queries[i], fbuf, codes, buckets)
        for t in range(hf.l):
            for item in bucket_ids(tables, t, buckets[t]):
                if seen[item] == 0:
                    seen[item] = 1
                    if pos == ids.shape[0]:
                        grown = np.empty(2 * pos, dtype=np.int64)
                        grown[:pos] = ids
                        ids = grown
                    ids[pos] = item
                    pos += 1
        indptr[i + 1] = pos
        for s in range(indptr[i], pos):
            seen[ids[s]] = 0
    return indptr, ids[:pos].copy()


def retrieve_from_tables(
    hf: HashFunctions, tables: TableArrays, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Neurons the real tables return for each query: the union of its L buckets' stored ids.

    Unlike :func:`retrieve_by_codes` this honours bucket capacity (ids evicted from full buckets
    are not retrieved).

    Parameters
    ----------
    hf : HashFunctions
        The tables' hash functions.
    tables : TableArrays
        Built tables.
    queries : ndarray of float32, shape (m, hf.dim)
        Dense layer inputs.

    Returns
    -------
    indptr : ndarray of int64, shape (m + 1,)
    ids : ndarray of int64, shape (indptr[-1],)
    """
    n_float, n_int = hash_scratch_sizes(hf)
    return _retrieve_tables(hf, tables, np.ascontiguousarray(queries), n_float, n_int)
