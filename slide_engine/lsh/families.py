"""Hash-family parameters: one NamedTuple of plain arrays shared by every family, built in NumPy.

A single record type lets njit callers (the SLIDE engine, MONGOOSE) dispatch on ``family`` at run
time with one compiled specialisation. Fields a family does not use hold empty arrays.
"""

from typing import NamedTuple

import numpy as np

FAMILY_SIMHASH = 0
FAMILY_WTA = 1
FAMILY_DWTA = 2
FAMILY_MINHASH = 3
FAMILIES = {"simhash": FAMILY_SIMHASH, "wta": FAMILY_WTA, "dwta": FAMILY_DWTA,
            "minhash": FAMILY_MINHASH}

PACK_CONCAT = 0
PACK_REFERENCE_OVERLAP_2BIT = 1
PACKINGS = {"concat": PACK_CONCAT, "reference-overlap-2bit": PACK_REFERENCE_OVERLAP_2BIT}


class HashFunctions(NamedTuple):
    """K codes per table for L tables, and how they become a bucket index.

    Hash function ``f = t * k + j`` is code ``j`` of table ``t``.
    """

    family: int
    """One of ``FAMILY_*``."""
    k: int
    """Codes per table."""
    l: int  # noqa: E741 -- the LSH literature's name for the number of tables
    """Number of tables."""
    dim: int
    """Input dimension d."""
    code_bits: int
    """Bits per code: 1 (SimHash), ceil(log2(bin_size)) (WTA/DWTA), b (b-bit MinHash)."""
    packing: int
    """One of ``PACK_*``."""
    n_buckets: int
    """Buckets per table actually addressable: min(configured, largest packed index + 1)."""
    fold: bool
    """The packed codes address more than ``n_buckets``: a mixing hash folds them (every code
    counts); False: the packed index is the bucket (lossless concatenation)."""
    bin_size: int
    """WTA/DWTA: coordinates compared per code."""
    topk: int
    """MinHash: the set is the ``topk`` largest nonzero coordinates (0: every nonzero)."""
    seed: np.uint64
    """Key of the densification and MinHash hashes."""
    proj: np.ndarray
    """SimHash: int8 (dim, k*l), entries in {-1, 0, +1}; else shape (0, 0)."""
    bins: np.ndarray
    """WTA/DWTA: int32 (k*l, bin_size), coordinates of each bin; else shape (0, 0)."""
    inv_ptr: np.ndarray
    """WTA/DWTA: int64 (dim+1,), CSR pointers of ``inv_slot`` by coordinate; else (1,)."""
    inv_slot: np.ndarray
    """WTA/DWTA: int32 (nnz,), slots ``f * bin_size + p`` where a coordinate appears; else (0,)."""
    mips_proj: np.ndarray
    """Inner-product SimHash: float32 (2, k*l), the projections of the bias coordinate (row 0)
    and of the transform's extra coordinate (row 1), Gaussian with the variance of a ``proj``
    entry; else shape (0, 0)."""


def _bits_for(n: int) -> int:
    return max(1, int(np.ceil(np.log2(n))))


def _largest_packed(k: int, code_bits: int, packing: int) -> int:
    shift = code_bits if packing == PACK_CONCAT else 2
    return sum(((1 << code_bits) - 1) << (shift * (k - 1 - j)) for j in range(k))


def _permutation_bins(dim: int, n_functions: int, bin_size: int,
                      rng: np.random.Generator) -> np.ndarray:
    # Bins are consecutive runs of fresh random permutations of the coordinates (the reference's
    # construction), never straddling two permutations, so a bin has no repeated coordinate.
    per_perm = dim // bin_size
    n_perm = -(-n_functions // per_perm)
    perms = [rng.permutation(dim)[: per_perm * bin_size] for _ in range(n_perm)]
    return np.concatenate(perms).reshape(-1, bin_size)[:n_functions].astype(np.int32)


def _inverse(bins: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    flat = bins.ravel()
    order = np.argsort(flat, kind="stable").astype(np.int32)
    counts = np.bincount(flat, minlength=dim)
    ptr = np.zeros(dim + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, order


def _mips_projections(family: str, mips: bool, n_fun: int, density: float,
                      rng: np.random.Generator) -> np.ndarray:
    # the bias's and the extra coordinate's projections: Gaussian, the variance of a sparse
    # +-1 entry of density ``density``; (0, 0) without mips
    if not mips:
        return np.zeros((0, 0), dtype=np.float32)
    if family != "simhash":
        raise ValueError(f"mips (inner-product hashing) needs family 'simhash', not {family!r}")
    return (rng.standard_normal((2, n_fun)) * np.sqrt(density)).astype(np.float32)


def make_hash_functions(family: str, dim: int, k: int, l: int, n_buckets: int,  # noqa: E741
                        seed: int, packing: str = "concat", bin_size: int = 8,
                        code_bits: int | None = None, simhash_density: float = 1.0 / 3.0,
                        minhash_topk: int = 32, mips: bool = False) -> HashFunctions:
    """Draw the K*L hash functions of one family.

    Parameters
    ----------
    family : {"simhash", "wta", "dwta", "minhash"}
        SimHash: sparse random projections, signs +-1 on ``simhash_density`` of the coordinates,
        1 bit per code. WTA: argmax position within a bin of ``bin_size`` permuted coordinates.
        DWTA: WTA over nonzero coordinates only, empty bins filled by densification. MinHash:
        one-permutation minwise hashing of the input's support, densified, b-bit codes.
    dim : int
        Input dimension d.
    k, l : int
        Codes per table and number of tables.
    n_buckets : int
        Configured buckets per table. When the packed codes can reach it (e.g. DWTA K=8 with
        3-bit codes at 2**18), the packed value is folded by a multiply-xorshift hash, so every
        one of the K codes influences the bucket; a plain ``mod`` of a power of two would keep
        only the last codes.
    seed : int
        Seed of the draw (``redraw`` = a new seed).
    packing : {"concat", "reference-overlap-2bit"}
        ``concat`` concatenates the K codes' bits losslessly; ``reference-overlap-2bit`` shifts
        successive codes by 2 bits only (the reference code's packing, codes overlap).
    bin_size : int
        WTA/DWTA bin size (8 gives 3-bit codes).
    code_bits : int, optional
        MinHash bits kept per code (default 4). Ignored by the other families.
    simhash_density : float
        Fraction of coordinates with a nonzero sign in each SimHash projection.
    minhash_topk : int
        MinHash set size (the largest nonzero coordinates); 0 takes every nonzero coordinate.
    mips : bool
        SimHash only: also draw ``mips_proj``, the projections of two more coordinates (a
        neuron's bias and the inner-product transform's ``sqrt(M^2 - |x|^2)``). They are
        Gaussian, N(0, ``simhash_density``): each is one coordinate that can carry most of a
        transformed vector's norm, where a sparse +-1 entry (0 with probability 2/3) would be
        far from the Gaussian projection that SimHash's ``1 - theta / pi`` assumes. ``dim`` stays
        the weight rows' dimension D.

    Returns
    -------
    HashFunctions
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown hash family {family!r}; choose from {sorted(FAMILIES)}")
    if packing not in PACKINGS:
        raise ValueError(f"unknown packing {packing!r}; choose from {sorted(PACKINGS)}")
    if min(dim, k, l, n_buckets) < 1:
        raise ValueError("dim, k, l and n_buckets must be positive")
    fam, pack = FAMILIES[family], PACKINGS[packing]
    rng = np.random.default_rng(seed)
    n_fun = k * l
    proj = np.zeros((0, 0), dtype=np.int8)
    bins = np.zeros((0, 0), dtype=np.int32)
    inv_ptr = np.zeros(1, dtype=np.int64)
    inv_slot = np.zeros(0, dtype=np.int32)
    if fam == FAMILY_SIMHASH:
        bits = 1
        if not 0.0 < simhash_density <= 1.0:
            raise ValueError("simhash_density must be in (0, 1]")
        signs = rng.choice(np.array([-1, 1], dtype=np.int8), size=(dim, n_fun))
        proj = np.where(rng.random((dim, n_fun)) < simhash_density, signs, 0).astype(np.int8)
    elif fam in (FAMILY_WTA, FAMILY_DWTA):
        if not 2 <= bin_size <= dim:
            raise ValueError(f"bin_size must be in [2, dim={dim}], got {bin_size}")
        bits = _bits_for(bin_size)
        bins = _permutation_bins(dim, n_fun, bin_size, rng)
        inv_ptr, inv_slot = _inverse(bins, dim)
    else:
        bits = 4 if code_bits is None else int(code_bits)
        if not 1 <= bits <= 31:
            raise ValueError("code_bits must be in [1, 31]")
        if minhash_topk < 0:
            raise ValueError("minhash_topk must be >= 0")
    if k * bits > 63:
        raise ValueError(f"k * code_bits = {k * bits} exceeds 63 bits: the K codes of a table "
                         "are packed into one 64-bit word; lower k or code_bits")
    if n_buckets >= 2**31:
        raise ValueError(f"n_buckets must be below 2**31, got {n_buckets}")
    hseed = np.uint64(rng.integers(0, 2**63, dtype=np.int64))
    mips_proj = _mips_projections(family, mips, n_fun, simhash_density, rng)
    largest = _largest_packed(k, bits, pack)
    return HashFunctions(fam, k, l, dim, bits, pack, min(n_buckets, largest + 1),
                         largest + 1 > n_buckets,
                         bin_size if fam in (FAMILY_WTA, FAMILY_DWTA) else 1,
                         int(minhash_topk), hseed, np.ascontiguousarray(proj),
                         np.ascontiguousarray(bins), inv_ptr, inv_slot,
                         np.ascontiguousarray(mips_proj))


def hash_scratch_sizes(hf: HashFunctions) -> tuple[int, int]:
    """Per-thread scratch lengths ``(n_float, n_int)`` that the hashing kernels need.

    Parameters
    ----------
    hf : HashFunctions

    Returns
    -------
    tuple of int
        Length of the float32 buffer (projections, bin values, top-k selection: covers a sparse
        input with up to ``dim`` nonzeros) and of the int32 code buffer (k*l).
    """
    n_fun = hf.k * hf.l
    return max(n_fun * hf.bin_size, n_fun, hf.dim), n_fun
