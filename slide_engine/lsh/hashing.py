"""Hashing kernels: input vector -> K*L codes -> L bucket indices (njit, allocation-free).

Dense inputs are float32 (d,); sparse inputs are (indices int32 (nnz,), sorted ascending, no
duplicates; values float32 (nnz,)). For every family the sparse kernel returns exactly what the
dense kernel returns on the densified vector. Scratch buffers come from
:func:`~slide_engine.lsh.families.hash_scratch_sizes`.
"""

import numpy as np
from numba import njit, prange

from .families import (
    FAMILY_DWTA,
    FAMILY_SIMHASH,
    FAMILY_WTA,
    PACK_CONCAT,
    HashFunctions,
    hash_scratch_sizes,
)
from .rng import hash3, mix64

_EMPTY = -1
_ABSENT = np.iinfo(np.int32).min
_NO_BEST = np.iinfo(np.int64).min
_MAX_PROBES = 64
_LOW31 = np.uint64(0x7FFFFFFF)
_S33 = np.uint64(33)
_S32 = np.uint64(32)
_ROW_CHUNK = 2048


@njit(cache=True)
def _simhash(hf, x_idx, x_val, acc, codes):
    n_fun = hf.k * hf.l
    acc[:n_fun] = 0.0
    proj = hf.proj
    for q in range(x_idx.shape[0]):
        v = x_val[q]
        if v != 0.0:
            row = proj[x_idx[q]]
            for f in range(n_fun):
                acc[f] += v * np.float32(row[f])
    for f in range(n_fun):
        codes[f] = 1 if acc[f] > 0.0 else 0


@njit(cache=True)
def _project_dense(hf, x, acc):
    # acc[:k*l] = the projections of the dense x's first hf.dim entries (zeros skipped)
    n_fun = hf.k * hf.l
    acc[:n_fun] = 0.0
    proj = hf.proj
    for j in range(hf.dim):
        v = x[j]
        if v != 0.0:
            row = proj[j]
            for f in range(n_fun):
                acc[f] += v * np.float32(row[f])


@njit(cache=True)
def _simhash_dense(hf, x, acc, codes):
    _project_dense(hf, x, acc)
    for f in range(hf.k * hf.l):
        codes[f] = 1 if acc[f] > 0.0 else 0


@njit(cache=True, inline="always")
def _key32(bits, skip_zero):
    # Order-preserving int32 key of a float32 bit pattern; a zero under ``skip_zero`` (DWTA:
    # zero = absent) gets _ABSENT, below every float's key (only NaN patterns map there).
    b = np.int64(bits)
    if skip_zero and (b & 0x7FFFFFFF) == 0:
        return _ABSENT
    return np.int32(b ^ ((b >> 31) & 0x7FFFFFFF))


@njit(cache=True, inline="always")
def _bin_best(best, key, p, m, code_bits):
    # Branch-free argmax: the key shifted left with (m-1-p) in the low bits, so the max is the
    # largest value at the lowest position. Branchy float compares cost ~3x more here.
    return max(best, (np.int64(key) << code_bits) | (m - 1 - p))


@njit(cache=True, inline="always")
def _best_code(best, m, code_bits):
    if (best >> code_bits) == _ABSENT:
        return _EMPTY
    return m - 1 - (best & ((1 << code_bits) - 1))


@njit(cache=True)
def _wta_slots(hf, slot_val, codes, skip_zero):
    # Argmax position per bin of slot values (lowest position on ties); with ``skip_zero`` zeros
    # are absent (DWTA) and a bin without a nonzero is marked empty.
    m = hf.bin_size
    nb = hf.code_bits
    vi = slot_val.view(np.int32)
    for f in range(hf.k * hf.l):
        best = _NO_BEST
        for p in range(m):
            best = _bin_best(best, _key32(vi[f * m + p], skip_zero), p, m, nb)
        codes[f] = _best_code(best, m, nb)


@njit(cache=True)
def _wta_dense(hf, x, keybuf, codes, skip_zero):
    # As _wta_slots, keying each coordinate of x once (into keybuf) instead of once per bin.
    bins = hf.bins
    m = hf.bin_size
    nb = hf.code_bits
    xi = x.view(np.int32)
    keys = keybuf.view(np.int32)
    for j in range(hf.dim):
        keys[j] = _key32(xi[j], skip_zero)
    for f in range(hf.k * hf.l):
        best = _NO_BEST
        for p in range(m):
            best = _bin_best(best, keys[bins[f, p]], p, m, nb)
        codes[f] = _best_code(best, m, nb)


@njit(cache=True)
def _gather_sparse(hf, x_idx, x_val, slot_val):
    n_slot = hf.k * hf.l * hf.bin_size
    slot_val[:n_slot] = 0.0
    for q in range(x_idx.shape[0]):
        j = x_idx[q]
        for s in range(hf.inv_ptr[j], hf.inv_ptr[j + 1]):
            slot_val[hf.inv_slot[s]] = x_val[q]


@njit(cache=True)
def densify(codes: np.ndarray, n_fun: int, seed: np.uint64) -> None:
    """Fill empty codes (``-1``) from non-empty ones, in place (optimal densification).

    Empty code ``i`` takes the code of bin ``h(i, 1), h(i, 2), ...`` (a keyed hash into
    ``[0, n_fun)``), the first that was non-empty *before* densification (Shrivastava 2017; Chen &
    Shrivastava 2018 for DWTA). After 64 misses it scans forward from the last probe, so the cost is
    bounded. If every code is empty (e.g. a zero vector) all codes become 0.

    Parameters
    ----------
    codes : numpy.ndarray
        int32 (>= n_fun,); entries ``< 0`` are empty.
    n_fun : int
        Number of codes (k*l).
    seed : numpy.uint64
        Densification key.
    """
    n_full = 0
    for i in range(n_fun):
        if codes[i] >= 0:
            n_full += 1
    if n_full == n_fun:
        return
    if n_full == 0:
        codes[:n_fun] = 0
        return
    # Borrowed codes are stored as -(c + 2) so "non-empty before densification" stays >= 0.
    for i in range(n_fun):
        if codes[i] != _EMPTY:
            continue
        src = -1
        for attempt in range(1, _MAX_PROBES + 1):
            src = np.int64(hash3(seed, i, attempt) % np.uint64(n_fun))
            if codes[src] >= 0:
                break
        while codes[src] < 0:
            src = src + 1 if src + 1 < n_fun else 0
        codes[i] = -(codes[src] + 2)
    for i in range(n_fun):
        if codes[i] < 0:
            codes[i] = -codes[i] - 2


@njit(cache=True)
def _select_threshold(vals, n, topk):
    # Quickselect (middle pivot) on vals[:n]: returns the topk-th largest value.
    lo = 0
    hi = n - 1
    want = topk - 1
    while lo < hi:
        pivot = vals[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while vals[i] > pivot:
                i += 1
            while vals[j] < pivot:
                j -= 1
            if i <= j:
                vals[i], vals[j] = vals[j], vals[i]
                i += 1
                j -= 1
        if want <= j:
            hi = j
        elif want >= i:
            lo = i
        else:
            break
    return vals[want]


@njit(cache=True)
def _minhash_add(hf, j, codes):
    n_fun = hf.k * hf.l
    h = np.int64((hash3(hf.seed, j, 0) >> _S33) & _LOW31)
    b = (h * n_fun) >> 31
    if codes[b] < 0 or h < codes[b]:
        codes[b] = h


@njit(cache=True, inline="always")
def _minhash_topk(hf, x_idx, x_val, dense, n, thr, codes):
    # add the ``topk`` largest nonzero coordinates: those above the threshold value ``thr``,
    # then ties at ``thr`` in coordinate order until ``topk`` are in
    n_above = 0
    for q in range(n):
        if x_val[q] != 0.0 and x_val[q] > thr:
            n_above += 1
    ties = hf.topk - n_above
    for q in range(n):
        v = x_val[q]
        if v == 0.0 or v < thr:
            continue
        if v == thr:
            if ties == 0:
                continue
            ties -= 1
        _minhash_add(hf, q if dense else x_idx[q], codes)


@njit(cache=True)
def _minhash(hf, x_idx, x_val, dense, buf, codes):
    # The set: nonzero coordinates, or the ``topk`` largest of them (ties: lowest coordinate).
    # Dense input: x_val is x and entry q is coordinate q (x_idx is not read).
    n_fun = hf.k * hf.l
    codes[:n_fun] = _EMPTY
    n = hf.dim if dense else x_idx.shape[0]
    nnz = 0
    for q in range(n):
        if x_val[q] != 0.0:
            buf[nnz] = x_val[q]
            nnz += 1
    if hf.topk == 0 or nnz <= hf.topk:
        for q in range(n):
            if x_val[q] != 0.0:
                _minhash_add(hf, q if dense else x_idx[q], codes)
    else:
        _minhash_topk(hf, x_idx, x_val, dense, n, _select_threshold(buf, nnz, hf.topk), codes)
    densify(codes, n_fun, hf.seed)
    mask = (1 << hf.code_bits) - 1
    for f in range(n_fun):
        codes[f] &= mask


_FOLD_KEY = np.uint64(0xD6E8FEB86659FD93)


@njit(cache=True, inline="always")
def fold_packed(hf: HashFunctions, packed: np.uint64) -> np.int32:
    """Bucket of a table's packed codes: the packed value itself, or its mixing fold.

    With ``hf.fold`` the packed value (up to 63 bits) goes through a multiply-xorshift hash
    (splitmix64's bijective finaliser) and the high 32 bits are scaled to ``[0, n_buckets)``
    (multiply-shift): every one of the K codes changes the bucket of about ``1 - 1/n_buckets``
    of the inputs. Build, query and re-insertion all bucket through this one function.
    """
    if not hf.fold:
        return np.int32(packed)
    z = mix64(packed ^ _FOLD_KEY) >> _S32
    return np.int32((z * np.uint64(hf.n_buckets)) >> _S32)


@njit(cache=True)
def pack_codes(hf: HashFunctions, codes: np.ndarray, buckets: np.ndarray) -> None:
    """Combine each table's K codes into its bucket index.

    ``concat``: ``sum_j code_j << (bits * (k-1-j))`` (lossless); ``reference-overlap-2bit``: the
    same with a 2-bit shift. When that index can reach ``n_buckets`` (``hf.fold``) it is folded
    by :func:`fold_packed`, a mixing hash over all K codes.

    Parameters
    ----------
    hf : HashFunctions
    codes : numpy.ndarray
        int32 (>= k*l,), code ``j`` of table ``t`` at ``t*k + j``, each in ``[0, 2**code_bits)``.
    buckets : numpy.ndarray
        int32 (l,), output.
    """
    shift = np.uint64(hf.code_bits if hf.packing == PACK_CONCAT else 2)
    for t in range(hf.l):
        b = np.uint64(0)
        for j in range(hf.k):
            b = (b << shift) + np.uint64(codes[t * hf.k + j])
        buckets[t] = fold_packed(hf, b)


@njit(cache=True)
def hash_codes_dense(hf: HashFunctions, x: np.ndarray, fbuf: np.ndarray,
                     codes: np.ndarray) -> None:
    """K*L codes of a dense vector.

    Parameters
    ----------
    hf : HashFunctions
    x : numpy.ndarray
        float32 (dim,).
    fbuf : numpy.ndarray
        float32 scratch (>= hash_scratch_sizes(hf)[0],).
    codes : numpy.ndarray
        int32 (>= k*l,), output; code ``j`` of table ``t`` at ``t*k + j``.
    """
    fam = hf.family
    if fam == FAMILY_SIMHASH:
        _simhash_dense(hf, x, fbuf, codes)
    elif fam == FAMILY_WTA or fam == FAMILY_DWTA:
        _wta_dense(hf, x, fbuf, codes, fam == FAMILY_DWTA)
        if fam == FAMILY_DWTA:
            densify(codes, hf.k * hf.l, hf.seed)
    else:
        _minhash(hf, hf.inv_slot, x, True, fbuf, codes)


@njit(cache=True)
def hash_codes_sparse(hf: HashFunctions, x_idx: np.ndarray, x_val: np.ndarray,
                      fbuf: np.ndarray, codes: np.ndarray) -> None:
    """K*L codes of a sparse vector; equal to :func:`hash_codes_dense` on its dense form.

    Parameters
    ----------
    hf : HashFunctions
    x_idx : numpy.ndarray
        int32 (nnz,), coordinates in ``[0, dim)``, sorted ascending, no duplicates.
    x_val : numpy.ndarray
        float32 (nnz,).
    fbuf : numpy.ndarray
        float32 scratch (>= hash_scratch_sizes(hf)[0],).
    codes : numpy.ndarray
        int32 (>= k*l,), output.
    """
    fam = hf.family
    if fam == FAMILY_SIMHASH:
        _simhash(hf, x_idx, x_val, fbuf, codes)
    elif fam == FAMILY_WTA or fam == FAMILY_DWTA:
        _gather_sparse(hf, x_idx, x_val, fbuf)
        _wta_slots(hf, fbuf, codes, fam == FAMILY_DWTA)
        if fam == FAMILY_DWTA:
            densify(codes, hf.k * hf.l, hf.seed)
    else:
        _minhash(hf, x_idx, x_val, False, fbuf, codes)


@njit(cache=True)
def hash_dense(hf: HashFunctions, x: np.ndarray, fbuf: np.ndarray, codes: np.ndarray,
               buckets: np.ndarray) -> None:
    """Bucket index per table of a dense vector: x float32 (dim,) -> buckets int32 (l,).

    ``fbuf`` and ``codes`` are scratch as in :func:`hash_codes_dense`.
    """
    hash_codes_dense(hf, x, fbuf, codes)
    pack_codes(hf, codes, buckets)


@njit(cache=True)
def hash_sparse(hf: HashFunctions, x_idx: np.ndarray, x_val: np.ndarray, fbuf: np.ndarray,
                codes: np.ndarray, buckets: np.ndarray) -> None:
    """Bucket index per table of a sparse vector -> buckets int32 (l,).

    Arguments as in :func:`hash_codes_sparse`; ``buckets`` is the int32 (l,) output.
    """
    hash_codes_sparse(hf, x_idx, x_val, fbuf, codes)
    pack_codes(hf, codes, buckets)


@njit(cache=True, parallel=True)
def _hash_rows(hf, weights, rows, out, n_float, n_int):
    n = rows.shape[0]
    n_chunks = (n + _ROW_CHUNK - 1) // _ROW_CHUNK
    for c in prange(n_chunks):
        lo = c * _ROW_CHUNK
        hi = min(n, lo + _ROW_CHUNK)
        fbuf = np.empty(n_float, dtype=np.float32)
        codes = np.empty(n_int, dtype=np.int32)
        # Buckets are staged row-major, then written as one contiguous run per table: writing
        # out[:, r] directly strides over l distant cache lines per row.
        staged = np.empty((hi - lo, hf.l), dtype=np.int32)
        for r in range(lo, hi):
            hash_dense(hf, weights[rows[r]], fbuf, codes, staged[r - lo])
        for t in range(hf.l):
            for r in range(lo, hi):
                out[t, r] = staged[r - lo, t]


_BLAS_CHUNK = 16384


@njit(cache=True, parallel=True)
def _pack_signs(hf, z, out, lo):
    # z float32 (m, k*l): SimHash projections of rows lo..lo+m-1 -> out[t, lo + r]
    shift = np.uint64(hf.code_bits if hf.packing == PACK_CONCAT else 2)
    for r in prange(z.shape[0]):
        for t in range(hf.l):
            b = np.uint64(0)
            for j in range(hf.k):
                b = (b << shift) + np.uint64(1 if z[r, t * hf.k + j] > 0.0 else 0)
            out[t, lo + r] = fold_packed(hf, b)


def _simhash_rows_blas(hf: HashFunctions, weights: np.ndarray, rows: np.ndarray,
                       out: np.ndarray) -> None:
    # the K*L projections of a chunk of rows as one BLAS product (entries -1/0/+1 are exact in
    # float32), then the signs packed in parallel
    proj = hf.proj.astype(np.float32)
    z = np.empty((min(_BLAS_CHUNK, rows.shape[0]), hf.k * hf.l), dtype=np.float32)
    for lo in range(0, rows.shape[0], _BLAS_CHUNK):
        hi = min(rows.shape[0], lo + _BLAS_CHUNK)
        np.matmul(weights[rows[lo:hi]], proj, out=z[: hi - lo])
        _pack_signs(hf, z[: hi - lo], out, lo)


def hash_rows(hf: HashFunctions, weights: np.ndarray, rows: np.ndarray,
              out: np.ndarray) -> None:
    """Bucket indices of many dense rows, parallel over rows (each worker owns its scratch).

    SimHash (64 rows or more) projects chunks of rows with one BLAS product each and packs the
    signs in parallel: 3.5x less CPU than the per-row loop at 670,091 x 128 with K*L = 450
    (docs/performance.md, finding 2); the projections are sums of +-w, so the buckets equal the
    per-row kernel's except where a sum rounds to the other side of zero.

    Parameters
    ----------
    hf : HashFunctions
    weights : numpy.ndarray
        float32 (n, dim), C-contiguous.
    rows : numpy.ndarray
        int32 (m,), rows of ``weights`` to hash.
    out : numpy.ndarray
        int32 (l, m), output: ``out[t, r]`` is the bucket of row ``rows[r]`` in table ``t``.
    """
    if hf.family == FAMILY_SIMHASH and rows.shape[0] >= 64:
        _simhash_rows_blas(hf, weights, rows, out)
        return
    n_float, n_int = hash_scratch_sizes(hf)
    _hash_rows(hf, weights, rows, out, n_float, n_int)


# ---------------------------------------------------------------- inner-product (MIPS) SimHash
#
# Neyshabur & Srebro's "simple LSH": a neuron x = [w, b] (weight row and bias, |x| <= M) becomes
# P(x) = [x / M, sqrt(1 - |x|^2 / M^2)] and a query h becomes Q = [h, 1, 0] / |[h, 1]|; the angle
# between P(x) and Q is monotone in the inner product w.h + b, so SimHash over these D + 2
# coordinates collides with probability 1 - theta / pi, highest for the largest logit. The
# projection of the D weight coordinates is ``hf.proj`` (hf.dim = D), those of the bias and the
# extra coordinate are the Gaussian rows of ``hf.mips_proj``. Positive scales do not change a
# sign, so the kernels project x and sqrt(M^2 - |x|^2) unscaled, and the query [h, 1, 0]
# unnormalised. A neuron with |x| > M (it grew after M was taken) gets the extra coordinate 0.


@njit(cache=True)
def mips_extra(w: np.ndarray, b: float, m2: float) -> float:
    """The transform's extra coordinate ``sqrt(max(M^2 - |w|^2 - b^2, 0))`` (float64 sums).

    Parameters
    ----------
    w : numpy.ndarray
        float32 (D,), a neuron's weight row.
    b : float
        Its bias.
    m2 : float
        ``M^2``, the squared largest norm of ``[w, b]`` at the last full build.
    """
    n2 = np.float64(b) * np.float64(b)
    for j in range(w.shape[0]):
        n2 += np.float64(w[j]) * np.float64(w[j])
    return np.sqrt(max(m2 - n2, 0.0))


@njit(cache=True)
def hash_dense_mips(hf: HashFunctions, x: np.ndarray, fbuf: np.ndarray, codes: np.ndarray,
                    buckets: np.ndarray) -> None:
    """Buckets of a query under the inner-product transform: SimHash of ``[x, 1, 0]``.

    Parameters
    ----------
    hf : HashFunctions
        SimHash functions drawn with ``mips=True`` (``hf.dim = D``).
    x : numpy.ndarray
        float32 (>= D,), the query (the layer's input); entries past ``D`` are not read.
    fbuf, codes : numpy.ndarray
        Scratch as in :func:`hash_codes_dense`.
    buckets : numpy.ndarray
        int32 (l,), output.
    """
    n_fun = hf.k * hf.l
    acc = fbuf
    _project_dense(hf, x, acc)
    pb = hf.mips_proj[0]  # the bias's constant input 1; the extra coordinate's 0 adds nothing
    for f in range(n_fun):
        acc[f] += pb[f]
        codes[f] = 1 if acc[f] > 0.0 else 0
    pack_codes(hf, codes, buckets)


@njit(cache=True, parallel=True)
def _hash_rows_mips(hf, weights, bias, m2, rows, out):
    # the per-row kernel: each row's D + 2 projections summed directly
    n = rows.shape[0]
    n_fun = hf.k * hf.l
    d = hf.dim
    proj = hf.proj
    pb = hf.mips_proj[0]
    pe = hf.mips_proj[1]
    for r in prange(n):
        i = rows[r]
        acc = np.zeros(n_fun, dtype=np.float32)
        codes = np.empty(n_fun, dtype=np.int32)
        buckets = np.empty(hf.l, dtype=np.int32)
        w = weights[i]
        for j in range(d):
            v = w[j]
            if v != 0.0:
                for f in range(n_fun):
                    acc[f] += v * np.float32(proj[j, f])
        bi = bias[i]
        e = np.float32(mips_extra(w, bi, m2[i]))
        for f in range(n_fun):
            a = acc[f] + bi * pb[f] + e * pe[f]
            codes[f] = 1 if a > 0.0 else 0
        pack_codes(hf, codes, buckets)
        for t in range(hf.l):
            out[t, r] = buckets[t]


@njit(cache=True, parallel=True)
def _pack_signs_mips(hf, z, weights, bias, m2, rows, out, lo):
    # z float32 (m, k*l): the weight rows' projections (rows lo..lo+m-1 of ``rows``); add the
    # bias and extra coordinates' terms and pack the signs into out[t, lo + r]
    shift = np.uint64(hf.code_bits if hf.packing == PACK_CONCAT else 2)
    pb = hf.mips_proj[0]
    pe = hf.mips_proj[1]
    for r in prange(z.shape[0]):
        i = rows[lo + r]
        bi = bias[i]
        e = np.float32(mips_extra(weights[i], bi, m2[i]))
        for t in range(hf.l):
            b = np.uint64(0)
            for j in range(hf.k):
                f = t * hf.k + j
                a = z[r, f] + bi * pb[f] + e * pe[f]
                b = (b << shift) + np.uint64(1 if a > 0.0 else 0)
            out[t, lo + r] = fold_packed(hf, b)


def hash_rows_mips(hf: HashFunctions, weights: np.ndarray, bias: np.ndarray,
                   m: float | np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """Buckets of neurons under the inner-product transform, parallel over rows.

    Row ``i`` is hashed as SimHash of ``[w_i, b_i, sqrt(M^2 - |w_i|^2 - b_i^2)]`` (the extra
    coordinate 0 where the norm exceeds ``m``): ``R[:, :D] w + R[:, D] b + R[:, D+1] e``, with
    no transformed copy of the weights. 64 rows or more go through one BLAS product per chunk
    of rows (as :func:`hash_rows`), fewer through a per-row kernel; the two agree except where
    a projection rounds to the other side of zero.

    Parameters
    ----------
    hf : HashFunctions
        SimHash functions drawn with ``mips=True``: ``proj`` (D, k*l) for the weights,
        ``mips_proj`` (2, k*l) for the bias and the extra coordinate.
    weights : numpy.ndarray
        float32 (n, D), C-contiguous: the neurons' weight rows.
    bias : numpy.ndarray
        float32 (n,): their biases.
    m : float or numpy.ndarray
        The transform's M (>= the norms of the rows to get an exact transform), or float64
        (n,), each neuron's own M (norm ranges: the M of the neuron's range).
    rows : numpy.ndarray
        int32 (r,), rows to hash.
    out : numpy.ndarray
        int32 (l, r), output: ``out[t, q]`` is the bucket of row ``rows[q]`` in table ``t``.
    """
    if (hf.family != FAMILY_SIMHASH or hf.dim != weights.shape[1]
            or hf.mips_proj.shape != (2, hf.k * hf.l)):
        raise ValueError("the inner-product transform needs SimHash functions drawn with "
                         f"mips=True over D = {weights.shape[1]} coordinates; got family "
                         f"{hf.family}, dim {hf.dim}, mips_proj {hf.mips_proj.shape}")
    m2 = np.square(np.broadcast_to(np.asarray(m, dtype=np.float64), (weights.shape[0],)))
    if rows.shape[0] < 64:
        _hash_rows_mips(hf, weights, bias, m2, rows, out)
        return
    proj = hf.proj.astype(np.float32)
    z = np.empty((min(_BLAS_CHUNK, rows.shape[0]), hf.k * hf.l), dtype=np.float32)
    for lo in range(0, rows.shape[0], _BLAS_CHUNK):
        hi = min(rows.shape[0], lo + _BLAS_CHUNK)
        np.matmul(weights[rows[lo:hi]], proj, out=z[: hi - lo])
        _pack_signs_mips(hf, z[: hi - lo], weights, bias, m2, rows, out, lo)


def mips_norms(weights: np.ndarray, bias: np.ndarray,
               rows: np.ndarray | None = None) -> np.ndarray:
    """Norms of ``[w_i, b_i]`` over ``rows`` (None: every row): float64 (len(rows),).

    ``weights`` float32 (n, D), ``bias`` float32 (n,); sums in float64, one chunk of rows at a
    time (no copy of the whole matrix).
    """
    n = weights.shape[0] if rows is None else rows.shape[0]
    out = np.empty(n, dtype=np.float64)
    for lo in range(0, n, _BLAS_CHUNK):
        hi = min(n, lo + _BLAS_CHUNK)
        sel = slice(lo, hi) if rows is None else rows[lo:hi]
        w = weights[sel].astype(np.float64)
        b = bias[sel].astype(np.float64)
        out[lo:hi] = np.sqrt(np.einsum("ij,ij->i", w, w) + b * b)
    return out


def mips_norm(weights: np.ndarray, bias: np.ndarray, rows: np.ndarray | None = None) -> float:
    """Largest norm of ``[w_i, b_i]`` over ``rows`` (None: every row), the transform's M."""
    norms = mips_norms(weights, bias, rows)
    return float(norms.max()) if norms.size else 0.0


def mips_range_m(norms: np.ndarray, ranges: int) -> np.ndarray:
    """Each neuron's M under norm ranging (Yan et al. 2018): float64 (n,).

    The neurons are split by norm into ``ranges`` groups of (nearly) equal size; a neuron's M
    is the largest norm of its group (``ranges=1``: the largest norm overall). A norm far below
    the overall largest would otherwise make ``[x, sqrt(M^2 - |x|^2)]`` nearly the same vector
    for every small neuron (they all share buckets, whatever the query).

    Parameters
    ----------
    norms : numpy.ndarray
        float64 (n,), the norms of ``[w_i, b_i]`` (:func:`mips_norms`).
    ranges : int
        Number of groups (>= 1).
    """
    if ranges < 1:
        raise ValueError(f"ranges must be >= 1, got {ranges}")
    out = np.empty_like(norms, dtype=np.float64)
    order = np.argsort(norms, kind="stable")
    for group in np.array_split(order, min(ranges, max(1, norms.size))):
        if group.size:
            out[group] = norms[group].max()
    return out
