"""Numba kernels that print CSR rows as XC text lines (``%.<P>g`` values), for the writer.

Formatting 37M ``id:value`` tokens through Python string formatting takes minutes; these kernels
write ASCII straight into a byte buffer. Values follow C's ``%.<P>g`` (round half to even on the
float64 of the float32 value), checked against Python's formatting in the tests.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_POW10 = np.array([10.0**k for k in range(23)])
TOKEN_BYTES = 12 + 16 + 1  # an upper bound on len("<id>:<value> ") for ids < 2**31, P <= 9


@numba.njit(cache=True, inline="always")
def _scale(v: float, k: int) -> float:
    """v * 10**k, exact-rounded for |k| <= 22 (split in two steps beyond)."""
    while k > 22:
        v *= _POW10[22]
        k -= 22
    while k < -22:
        v /= _POW10[22]
        k += 22
    return v * _POW10[k] if k >= 0 else v / _POW10[-k]


@numba.njit(cache=True)
def _put_int(out: np.ndarray, pos: int, value: int) -> int:
    if value == 0:
        out[pos] = 48
        return pos + 1
    digits = np.empty(20, dtype=np.uint8)
    n = 0
    while value > 0:
        digits[n] = 48 + value % 10
        value //= 10
        n += 1
    for i in range(n):
        out[pos + i] = digits[n - 1 - i]
    return pos + n


@numba.njit(cache=True)
def _put_g(out: np.ndarray, pos: int, v: float, precision: int) -> int:
    """Write ``'%.{precision}g' % v`` for a finite v at ``out[pos:]``; return the new end."""
    if math.copysign(1.0, v) < 0:  # also -0.0, which %g prints as "-0"
        out[pos] = 45  # '-'
        pos += 1
        v = -v
    if v == 0:
        out[pos] = 48
        return pos + 1
    low = 10 ** (precision - 1)
    exp10 = int(np.floor(np.log10(v)))
    digits = 0
    for _ in range(4):  # log10 may be off by one either way; rounding may carry to 10**P
        digits = int(np.round(_scale(v, precision - 1 - exp10)))
        if digits >= 10 * low:
            exp10 += 1
        elif digits < low:
            exp10 -= 1
        else:
            break
    buf = np.empty(precision, dtype=np.uint8)
    for i in range(precision - 1, -1, -1):
        buf[i] = 48 + digits % 10
        digits //= 10
    n = precision
    while n > 1 and buf[n - 1] == 48:
        n -= 1  # %g strips trailing zeros
    if -4 <= exp10 < precision:
        if exp10 < 0:
            out[pos] = 48
            out[pos + 1] = 46
            pos += 2
            for _ in range(-exp10 - 1):
                out[pos] = 48
                pos += 1
            for i in range(n):
                out[pos + i] = buf[i]
            return pos + n
        for i in range(exp10 + 1):
            out[pos + i] = buf[i] if i < n else 48
        pos += exp10 + 1
        if n > exp10 + 1:
            out[pos] = 46
            pos += 1
            for i in range(exp10 + 1, n):
                out[pos] = buf[i]
                pos += 1
        return pos
    out[pos] = buf[0]
    pos += 1
    if n > 1:
        out[pos] = 46
        pos += 1
        for i in range(1, n):
            out[pos] = buf[i]
            pos += 1
    out[pos] = 101  # 'e'
    out[pos + 1] = 45 if exp10 < 0 else 43
    pos += 2
    e = abs(exp10)
    if e < 10:
        out[pos] = 48
        pos += 1
    return _put_int(out, pos, e)


@numba.njit(cache=True)
def format_rows(
    x_indptr: np.ndarray,
    x_indices: np.ndarray,
    x_values: np.ndarray,
    y_indptr: np.ndarray,
    y_indices: np.ndarray,
    first: int,
    last: int,
    precision: int,
    out: np.ndarray,
) -> int:
    """Print rows ``first .. last - 1`` as XC lines (each ending in a newline) into ``out``.

    Parameters
    ----------
    x_indptr, y_indptr : ndarray of int64, shape (n + 1,)
    x_indices : ndarray of int32, shape (nnz,)
    x_values : ndarray of float32, shape (nnz,)
    y_indices : ndarray of int32, shape (nnz_y,)
    first, last : int
        Row range.
    precision : int
        Significant digits of the values (``%g``), 1..9.
    out : ndarray of uint8, shape (>= bytes needed,)
        At least ``TOKEN_BYTES`` per feature, 12 per label and 2 per row.

    Returns
    -------
    int
        Bytes written.
    """
    pos = 0
    for r in range(first, last):
        for j in range(y_indptr[r], y_indptr[r + 1]):
            if j > y_indptr[r]:
                out[pos] = 44
                pos += 1
            pos = _put_int(out, pos, y_indices[j])
        for j in range(x_indptr[r], x_indptr[r + 1]):
            out[pos] = 32
            pos = _put_int(out, pos + 1, x_indices[j])
            out[pos] = 58
            pos = _put_g(out, pos + 1, float(x_values[j]), precision)
        if x_indptr[r] == x_indptr[r + 1]:
            out[pos] = 32  # keeps a point with neither labels nor features a non-empty line
            pos += 1
        out[pos] = 10
        pos += 1
    return pos
