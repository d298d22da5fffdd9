"""LSH for SLIDE: hash families, compact tables and active-set selection as Numba kernels.

API (kernels are ``@njit`` over plain arrays and NamedTuples of arrays, callable from other njit
code, e.g. inside a ``prange`` loop over samples; n neurons, d input dim, l tables, k codes, B
buckets per table, T threads)::

    hf = make_hash_functions(family, dim, k, l, n_buckets, seed, packing="concat", bin_size=8,
                             code_bits=None, simhash_density=1/3, minhash_topk=32, mips=False)
                                            # family: simhash | wta | dwta | minhash
                                            # packing: concat | reference-overlap-2bit
    hash_scratch_sizes(hf) -> (n_float, n_int)
    hash_codes_dense(hf, x (d,) f32, fbuf (n_float,) f32, codes (k*l,) i32)           [njit]
    hash_codes_sparse(hf, x_idx (nnz,) i32, x_val (nnz,) f32, fbuf, codes)           [njit]
    pack_codes(hf, codes (k*l,) i32, buckets (l,) i32)                                [njit]
    fold_packed(hf, packed u64) -> bucket    # lossless index, or a mixing fold (hf.fold)  [njit]
    hash_dense(hf, x, fbuf, codes, buckets (l,) i32)                                  [njit]
    hash_sparse(hf, x_idx, x_val, fbuf, codes, buckets)                               [njit]
    hash_rows(hf, weights (n, d) f32, rows (m,) i32, out (l, m) i32)       # parallel over rows

    # inner-product (MIPS) SimHash, hf from make_hash_functions(..., mips=True): neuron
    # [w, b, sqrt(M^2-|w|^2-b^2)], query [x, 1, 0] (Neyshabur & Srebro's simple LSH)
    hash_rows_mips(hf, weights (n, d) f32, bias (n,) f32, M, rows (m,) i32, out (l, m) i32)
    hash_dense_mips(hf, x (d,) f32, fbuf, codes, buckets (l,) i32)                   [njit]
    mips_extra(w (d,) f32, b, M^2) -> sqrt(max(M^2 - |w|^2 - b^2, 0))               [njit]
    mips_norms(weights, bias, rows=None) -> |[w_i, b_i]| (m,) f64; mips_norm: their max (M)
    mips_range_m(norms, ranges) -> each neuron's M: the largest norm of its equal-size range

    tables = allocate_tables(n, l, hf.n_buckets, capacity=128, replacement="fifo"|"reservoir",
                             rng_states (l,) u64, order="random"|"ascending")
    tables.bucket_of (l, n) i32 <- hash_rows(hf, W, arange(n), tables.bucket_of)
    build_tables(tables)                                  # [njit, parallel over tables]
    reinsert(tables, rows (m,) i32, new_buckets (l, m) i32)   # [njit, parallel over tables]
    bucket_ids(tables, t, b) -> int32 view                                            [njit]
    table_coverage(tables) -> fraction of the n neurons stored in at least one table

    policy = make_policy("union"|"threshold"|"vanilla"|"topk-count"|"random"|"exact-topk",
                         min_active=1000, threshold=2, budget=1000,
                         topup="per-sample"|"shared")
    scr = make_scratch(hf, tables, n_threads, seed)       # SelectScratch, one row per thread
    start_shared_topup(scr, seed)     # once per batch: the shared top-up's offset
    out = np.empty(out_capacity(policy, tables, max_labels), np.int32)   # one per thread
    n_active = query_dense(hf, tables, policy, x (d,) f32, labels (m,) i32,
                           weights (n, d) f32, scr, tid, out)                          [njit]
    n_active = query_sparse(hf, tables, policy, x_idx, x_val, labels, weights, scr, tid, out)
    select_active(policy, tables, buckets (l,), labels, scr, tid, out)  # already hashed  [njit]
    select_union / select_threshold / select_vanilla / select_topk_count / select_random /
    select_exact_topk / select_exact_topk_sparse                                       [njit]

    LSHIndex(n, d, family="dwta", k=6, l=50, n_buckets=2**18, capacity=128,
             replacement="fifo", seed=0, n_threads=None, order="random", mips=False,
             mips_ranges=1, **family_options)
        .build(W, bias=None) .rebuild(W, changed=None, bias=None) .redraw(W, seed, bias=None)
        .reinsert(W, rows, bias=None) .query(x, labels, policy, weights) .mips_m .mips_row_m
        .make_scratch(T) .bucket(t, b) .nbytes .hash_functions .tables

    ReferenceSchedule(rebuild_every=6400, redraw_every=128000),         # counted in samples
    DecayingSchedule(first_interval=6400, growth=1.5, redraw_every=0):
        .should_rebuild(before, after) .should_redraw(before, after) .action(before, after)

Worker ``tid`` must use only row ``tid`` of the scratch and its own ``out``. Serial calls are
bit-deterministic for a seed; build and reinsert are deterministic for any thread count.
"""

from .families import (
    FAMILIES,
    PACKINGS,
    HashFunctions,
    hash_scratch_sizes,
    make_hash_functions,
)
from .hashing import (
    densify,
    fold_packed,
    hash_codes_dense,
    hash_codes_sparse,
    hash_dense,
    hash_dense_mips,
    hash_rows,
    hash_rows_mips,
    hash_sparse,
    mips_extra,
    mips_norm,
    mips_norms,
    mips_range_m,
    pack_codes,
)
from .index import LSHIndex, numba_threads
from .schedule import DecayingSchedule, ReferenceSchedule
from .selection import (
    POLICIES,
    TOPUPS,
    SelectPolicy,
    SelectScratch,
    make_policy,
    make_scratch,
    out_capacity,
    query_dense,
    query_sparse,
    select_active,
    select_exact_topk,
    select_exact_topk_sparse,
    select_random,
    select_threshold,
    select_topk_count,
    select_union,
    select_vanilla,
    start_shared_topup,
)
from .tables import (
    ORDERS,
    REPLACEMENTS,
    TableArrays,
    allocate_tables,
    bucket_ids,
    build_tables,
    reinsert,
    table_coverage,
    tables_nbytes,
)

__all__ = [
    "FAMILIES", "ORDERS", "PACKINGS", "POLICIES", "REPLACEMENTS", "TOPUPS", "DecayingSchedule",
    "HashFunctions", "LSHIndex", "ReferenceSchedule", "SelectPolicy", "SelectScratch",
    "TableArrays",
    "allocate_tables", "bucket_ids", "build_tables", "densify", "fold_packed", "hash_codes_dense",
    "hash_codes_sparse", "hash_dense", "hash_dense_mips", "hash_rows", "hash_rows_mips",
    "hash_scratch_sizes", "hash_sparse", "make_hash_functions", "make_policy", "make_scratch",
    "mips_extra", "mips_norm", "mips_norms", "mips_range_m",
    "numba_threads", "out_capacity", "pack_codes", "query_dense",
    "query_sparse", "reinsert", "select_active",
    "select_exact_topk", "select_exact_topk_sparse", "select_random", "select_threshold",
    "select_topk_count", "select_union", "select_vanilla", "start_shared_topup",
    "table_coverage", "tables_nbytes",
]
