"""Numba kernels that parse the body of an XC text file from raw bytes.

The body (everything after the header line) is cut into chunks at line starts. The caller
counts bytes per chunk for upper bounds of the array sizes (one ``:`` per feature, one label
per comma plus one per line; exact for valid files except label-less rows), then
:func:`parse_chunks` parses the chunks in parallel, each into its own region of the CSR arrays.
Errors are returned as a code plus the byte span of the offending token; the Python caller
turns that into file, line and token text.
"""

from __future__ import annotations

import numba
import numpy as np

OK = 0
BLANK_LINE = 1
BAD_LABEL = 2
NEG_LABEL = 3
LABEL_RANGE = 4
BAD_FEATURE = 5
NEG_FEATURE = 6
FEATURE_RANGE = 7
NONFINITE = 8
DUP_FEATURE = 9
DUP_LABEL = 10
TOO_MANY_LINES = 11

_NL = 10
_CR = 13
_SP = 32
_TAB = 9
_COLON = 58
_COMMA = 44
_MINUS = 45
_PLUS = 43
_DOT = 46
_ZERO = 48
_NINE = 57
_ID_LIMIT = 2**31  # ids at or above this cannot be int32; treated as out of range
_MANT_LIMIT = 10**17  # keep at most 17-18 significant digits, the rest only shift the exponent
_FLT_MAX = 3.4028234663852886e38
# exact powers of ten: m / 10**k with m < 2**53 and k <= 22 is correctly rounded in float64
_POW10 = np.array([10.0**k for k in range(23)])


@numba.njit(cache=True)
def next_line_start(buf: np.ndarray, pos: int) -> int:
    """Return the offset just after the first newline at or after ``pos`` (or the size)."""
    n = buf.shape[0]
    while pos < n and buf[pos] != _NL:
        pos += 1
    return min(pos + 1, n)


@numba.njit(cache=True, inline="always")
def _is_space(c: int) -> bool:
    return c == _SP or c == _TAB or c == _CR


@numba.njit(cache=True)
def _token_end(buf: np.ndarray, pos: int, stop_at_comma: bool) -> int:
    n = buf.shape[0]
    while pos < n:
        c = buf[pos]
        if c == _NL or _is_space(c) or (stop_at_comma and c == _COMMA):
            break
        pos += 1
    return pos


@numba.njit(cache=True)
def _sort_row(indices: np.ndarray, values: np.ndarray, start: int, stop: int) -> int:
    """Sort ids of one row ascending (values follow); return a duplicated id or -1."""
    ordered = True
    for j in range(start + 1, stop):
        if indices[j] <= indices[j - 1]:
            ordered = False
            break
    if ordered:
        return -1
    order = np.argsort(indices[start:stop], kind="mergesort")
    ids = indices[start:stop][order]
    indices[start:stop] = ids
    if values.shape[0] > 0:
        values[start:stop] = values[start:stop][order]
    for j in range(1, ids.shape[0]):
        if ids[j] == ids[j - 1]:
            return ids[j]
    return -1


@numba.njit(cache=True)
def parse_body(
    buf: np.ndarray,
    start: int,
    stop: int,
    n_rows: int,
    n_features: int,
    n_labels: int,
    x_indptr: np.ndarray,
    x_indices: np.ndarray,
    x_values: np.ndarray,
    y_indptr: np.ndarray,
    y_indices: np.ndarray,
) -> tuple[int, int, int, int, int, int, int]:
    """Parse the point lines ``buf[start:stop]`` into preallocated CSR arrays.

    Parameters
    ----------
    buf : ndarray of uint8, shape (size,)
        The whole file.
    start, stop : int
        Byte span of whole lines (start just after a newline or the header).
    n_rows : int
        Most lines allowed in the span (N from the header minus earlier lines).
    n_features, n_labels : int
        D and L from the header (exclusive bounds on ids).
    x_indptr, y_indptr : ndarray of int64, shape (>= rows + 1,)
        Entries 1..rows are set to row pointers local to the span; entry 0 is not touched.
    x_indices : ndarray of int32, shape (>= nnz,)
    x_values : ndarray of float32, shape (>= nnz,)
    y_indices : ndarray of int32, shape (>= nnz_y,)
        Filled from entry 0; ids sorted within each row.

    Returns
    -------
    code : int
        ``OK`` or an error code of this module.
    rows : int
        Rows completed (on error: the 0-based row of the offending line).
    tok_start, tok_end : int
        Byte span of the offending token (or line) on error.
    aux : int
        The duplicated id for ``DUP_FEATURE`` / ``DUP_LABEL``, else -1.
    nx, ny : int
        Features and labels stored.
    """
    n = stop
    no_values = np.empty(0, dtype=np.float32)
    pos = start
    row = 0
    nx = 0
    ny = 0
    while pos < n:
        line_start = pos
        row_x0 = nx
        row_y0 = ny
        q = pos
        while q < n and buf[q] == _CR:
            q += 1
        if q == n or buf[q] == _NL:
            return BLANK_LINE, row, line_start, q, -1, nx, ny
        if row == n_rows:
            return TOO_MANY_LINES, row, line_start, _token_end(buf, line_start, False), -1, nx, ny
        # label field: absent when the line starts with whitespace
        if not _is_space(buf[pos]):
            while True:
                tok = pos
                neg = False
                if buf[pos] == _MINUS:
                    neg = True
                    pos += 1
                v = 0
                nd = 0
                while pos < n and _ZERO <= buf[pos] <= _NINE:
                    if v < _ID_LIMIT:
                        v = v * 10 + (buf[pos] - _ZERO)
                    nd += 1
                    pos += 1
                at_end = pos == n or buf[pos] == _NL or buf[pos] == _COMMA or _is_space(buf[pos])
                if nd == 0 or not at_end:
                    return BAD_LABEL, row, tok, _token_end(buf, tok, True), -1, nx, ny
                if neg:
                    return NEG_LABEL, row, tok, pos, -1, nx, ny
                if v >= n_labels:
                    return LABEL_RANGE, row, tok, pos, -1, nx, ny
                y_indices[ny] = v
                ny += 1
                if pos < n and buf[pos] == _COMMA:
                    pos += 1
                    continue
                break
        # feature tokens "id:value"
        while True:
            while pos < n and _is_space(buf[pos]):
                pos += 1
            if pos == n or buf[pos] == _NL:
                break
            tok = pos
            neg = False
            if buf[pos] == _MINUS:
                neg = True
                pos += 1
            fid = 0
            nd = 0
            while pos < n and _ZERO <= buf[pos] <= _NINE:
                if fid < _ID_LIMIT:
                    fid = fid * 10 + (buf[pos] - _ZERO)
                nd += 1
                pos += 1
            if nd == 0 or pos == n or buf[pos] != _COLON:
                return BAD_FEATURE, row, tok, _token_end(buf, tok, False), -1, nx, ny
            if neg:
                return NEG_FEATURE, row, tok, _token_end(buf, tok, False), -1, nx, ny
            if fid >= n_features:
                return FEATURE_RANGE, row, tok, _token_end(buf, tok, False), -1, nx, ny
            pos += 1
            sign = 1.0
            if pos < n and (buf[pos] == _MINUS or buf[pos] == _PLUS):
                if buf[pos] == _MINUS:
                    sign = -1.0
                pos += 1
            if pos < n and (buf[pos] | 32) in (105, 110):  # "i"/"n" in any case: inf, nan
                return NONFINITE, row, tok, _token_end(buf, tok, False), -1, nx, ny
            mant = 0
            exp10 = 0
            nd = 0
            while pos < n and _ZERO <= buf[pos] <= _NINE:
                if mant < _MANT_LIMIT:
                    mant = mant * 10 + (buf[pos] - _ZERO)
                else:
                    exp10 += 1
                nd += 1
                pos += 1
            if pos < n and buf[pos] == _DOT:
                pos += 1
                while pos < n and _ZERO <= buf[pos] <= _NINE:
                    if mant < _MANT_LIMIT:
                        mant = mant * 10 + (buf[pos] - _ZERO)
                        exp10 -= 1
                    nd += 1
                    pos += 1
            if nd == 0:
                return BAD_FEATURE, row, tok, _token_end(buf, tok, False), -1, nx, ny
            if pos < n and (buf[pos] == 101 or buf[pos] == 69):  # e E
                pos += 1
                esign = 1
                if pos < n and (buf[pos] == _MINUS or buf[pos] == _PLUS):
                    if buf[pos] == _MINUS:
                        esign = -1
                    pos += 1
                e = 0
                nd = 0
                while pos < n and _ZERO <= buf[pos] <= _NINE:
                    if e < 100000:
                        e = e * 10 + (buf[pos] - _ZERO)
                    nd += 1
                    pos += 1
                if nd == 0:
                    return BAD_FEATURE, row, tok, _token_end(buf, tok, False), -1, nx, ny
                exp10 += esign * e
            if pos < n and not (buf[pos] == _NL or _is_space(buf[pos])):
                return BAD_FEATURE, row, tok, _token_end(buf, tok, False), -1, nx, ny
            value = float(mant)
            if mant != 0:
                if exp10 >= 0:
                    value = value * (_POW10[exp10] if exp10 <= 22 else 10.0**exp10)
                else:
                    value = value / (_POW10[-exp10] if -exp10 <= 22 else 10.0 ** (-exp10))
            if not abs(value) <= _FLT_MAX:
                return NONFINITE, row, tok, pos, -1, nx, ny
            x_indices[nx] = fid
            x_values[nx] = sign * value
            nx += 1
        dup = _sort_row(x_indices, x_values, row_x0, nx)
        if dup >= 0:
            return DUP_FEATURE, row, line_start, pos, dup, nx, ny
        dup = _sort_row(y_indices, no_values, row_y0, ny)
        if dup >= 0:
            return DUP_LABEL, row, line_start, pos, dup, nx, ny
        x_indptr[row + 1] = nx
        y_indptr[row + 1] = ny
        row += 1
        pos += 1  # the newline (or one past the end)
    return OK, row, n, n, -1, nx, ny


@numba.njit(cache=True, parallel=True)
def parse_chunks(
    buf: np.ndarray,
    bounds: np.ndarray,
    row_off: np.ndarray,
    x_off: np.ndarray,
    y_off: np.ndarray,
    n_rows: int,
    n_features: int,
    n_labels: int,
    x_indptr: np.ndarray,
    x_indices: np.ndarray,
    x_values: np.ndarray,
    y_indptr: np.ndarray,
    y_indices: np.ndarray,
) -> np.ndarray:
    """Run :func:`parse_body` on every chunk in parallel, each into its own array region.

    Parameters
    ----------
    buf : ndarray of uint8, shape (size,)
    bounds : ndarray of int64, shape (c + 1,)
        Chunk byte bounds, each at a line start.
    row_off, x_off, y_off : ndarray of int64, shape (c,)
        First row / feature slot / label slot of each chunk (upper-bound counts of the
        chunks before it, so regions never overlap).
    n_rows, n_features, n_labels : int
        N, D, L from the header.
    x_indptr, y_indptr : ndarray of int64, shape (n_rows + 1,)
        Entries of chunk c's rows get pointers local to its region.
    x_indices, x_values, y_indices : ndarray
        Upper-bound sized outputs.

    Returns
    -------
    ndarray of int64, shape (c, 7)
        The :func:`parse_body` result of each chunk.
    """
    n_chunks = bounds.shape[0] - 1
    out = np.zeros((n_chunks, 7), dtype=np.int64)
    for c in numba.prange(n_chunks):
        r0 = row_off[c]
        res = parse_body(
            buf,
            bounds[c],
            bounds[c + 1],
            max(n_rows - r0, 0),
            n_features,
            n_labels,
            x_indptr[r0:],
            x_indices[x_off[c] :],
            x_values[x_off[c] :],
            y_indptr[r0:],
            y_indices[y_off[c] :],
        )
        for k in range(7):
            out[c, k] = res[k]
    return out
