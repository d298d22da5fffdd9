"""Reader and writer of the Extreme Classification Repository text format.

Format: a header line ``N D L`` then one point per line, ``l1,l2,... f:v f:v ...`` with 0-based
ids. Policies (each enforced with a :class:`DataFormatError` naming file, line and token):

- A point with no labels has an empty label field: its line starts with a space (kept, valid).
  A point may also have no features (``3,7`` alone on a line).
- Separators are spaces or tabs, several in a row are fine; ``\\r`` counts as whitespace, so
  CRLF files (the repository's Bibtex) read as is.
- Empty lines are errors, including one at the end of the file (a line holding only spaces is
  a point without labels and features, as the writer prints it).
- The number of point lines must equal N; ids must be in ``[0, D)`` / ``[0, L)``.
- Feature values must be finite and within float32 range; ``nan``/``inf`` are errors.
- Duplicate feature ids (or label ids) within one line are errors: summing or overwriting would
  hide a corrupt file, and no repository file contains them.
- Ids are sorted ascending within each row on reading (values kept aligned).
- The last line may lack its newline when it is complete; when it lacks the newline *and*
  its last token is malformed, the error says the file is truncated.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from slide_bench.data import _xc_format as kf
from slide_bench.data import _xc_parse as kp
from slide_bench.atomic import atomic_target
from slide_bench.data.xcdata import XCData
from slide_bench.errors import DataFormatError

_HEADER_LIMIT = 256
_INT32_MAX = np.iinfo(np.int32).max
_WRITE_CHUNK = 20_000
_MIN_CHUNK = 1 << 20  # bytes; smaller files are parsed in one chunk
_COUNT_BLOCK = 1 << 18  # cache-sized blocks: the three compares then hit L2


def _parse_header(buf: np.ndarray, source: str) -> tuple[int, int, int, int]:
    """Return (N, D, L, offset of the first point line)."""
    head = buf[:_HEADER_LIMIT].tobytes()
    if not head:
        raise DataFormatError(source, 1, None, "empty file (expected a header 'N D L')")
    end = head.find(b"\n")
    if end < 0 and len(buf) > _HEADER_LIMIT:
        raise DataFormatError(source, 1, _shorten(head), "header line 'N D L' is missing")
    line = head if end < 0 else head[:end]
    text = line.decode("ascii", errors="replace")
    parts = text.split()
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise DataFormatError(
            source, 1, _shorten(line), "header must be three non-negative integers 'N D L'"
        )
    n, d, l_ = (int(p) for p in parts)
    if d > _INT32_MAX or l_ > _INT32_MAX:
        raise DataFormatError(source, 1, text.strip(), "D and L must fit in int32")
    return n, d, l_, (len(line) + 1 if end >= 0 else len(buf))


def _shorten(raw: bytes, limit: int = 60) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _token_with_id(line: bytes, wanted: int, in_labels: bool) -> str:
    """Return the second token of ``line`` carrying id ``wanted`` (for duplicate errors)."""
    fields = line.replace(b"\t", b" ").rstrip(b"\r\n").split(b" ")
    label_field = b"" if line[:1].isspace() else fields[0]
    if in_labels:
        tokens = label_field.split(b",")
        key = [int(t) for t in tokens]
    else:
        tokens = [t for t in fields[0 if not label_field else 1 :] if t]
        key = [int(t.split(b":")[0]) for t in tokens]
    hits = [t for t, k in zip(tokens, key, strict=True) if k == wanted]
    return _shorten(hits[1] if len(hits) > 1 else hits[0])


def _raise_parse_error(
    buf: np.ndarray, source: str, header: tuple[int, int, int], result: tuple[int, ...]
) -> None:
    code, row, tok_start, tok_end, aux = result
    n, d, l_ = header
    line_no = row + 2
    token = _shorten(buf[tok_start:tok_end].tobytes())
    if code == kp.BLANK_LINE:
        raise DataFormatError(source, line_no, None, "blank line (each line holds one point)")
    if code == kp.TOO_MANY_LINES:
        raise DataFormatError(source, line_no, token, f"more point lines than the header's N={n}")
    if code in (kp.DUP_FEATURE, kp.DUP_LABEL):
        in_labels = code == kp.DUP_LABEL
        line = buf[tok_start:tok_end].tobytes()
        kind = "label" if in_labels else "feature"
        raise DataFormatError(
            source,
            line_no,
            _token_with_id(line, aux, in_labels),
            f"duplicate {kind} id {aux} in one line (not summed: it usually means corrupt data)",
        )
    truncated = tok_end == buf.shape[0] and buf[-1] != ord("\n")
    if truncated and code in (kp.BAD_FEATURE, kp.BAD_LABEL):
        raise DataFormatError(
            source,
            line_no,
            token,
            "truncated last line: the file ends, without a newline, inside this token; "
            "the file is incomplete (download or generate it again)",
        )
    messages = {
        kp.BAD_LABEL: "malformed label id (expected comma-separated non-negative integers; "
        "a point without labels must start with a space)",
        kp.NEG_LABEL: "negative label id",
        kp.LABEL_RANGE: f"label id out of range: must be < L={l_} (header)",
        kp.BAD_FEATURE: "malformed feature 'f:v' (expected <non-negative integer>:<number>)",
        kp.NEG_FEATURE: "negative feature id",
        kp.FEATURE_RANGE: f"feature id out of range: must be < D={d} (header)",
        kp.NONFINITE: "non-finite feature value (nan, inf, or beyond float32 range)",
    }
    raise DataFormatError(source, line_no, token, messages[code])


def parse_xc_bytes(buf: np.ndarray, source: str | Path) -> XCData:
    """Parse a whole XC text file held in memory.

    Parameters
    ----------
    buf : ndarray of uint8, shape (size,)
        The file's bytes.
    source : str or Path
        Name used in error messages.

    Returns
    -------
    XCData
        Rows in file order; ids sorted within each row.

    Raises
    ------
    DataFormatError
        On any violation of the format policies in this module's docstring.
    """
    source = str(source)
    n, d, l_, start = _parse_header(buf, source)
    bounds = _chunk_bounds(buf, start)
    counts = _count_bytes(buf, bounds)
    lines = counts[:, 2].copy()
    if buf.size > start and buf[-1] != ord("\n"):
        lines[-1] += 1  # a last line without its newline
    x_cap, y_cap = counts[:, 0], counts[:, 1] + lines
    row_off, x_off, y_off = (_exclusive_cumsum(a) for a in (lines, x_cap, y_cap))
    x_indptr = np.zeros(n + 1, dtype=np.int64)
    y_indptr = np.zeros(n + 1, dtype=np.int64)
    x_indices = np.empty(int(x_cap.sum()), dtype=np.int32)
    x_values = np.empty(x_indices.size, dtype=np.float32)
    y_indices = np.empty(int(y_cap.sum()), dtype=np.int32)
    results = kp.parse_chunks(
        buf, bounds, row_off, x_off, y_off, n, d, l_,
        x_indptr, x_indices, x_values, y_indptr, y_indices,
    )  # fmt: skip
    for c in range(results.shape[0]):
        if results[c, 0] != kp.OK:
            code, row, tok_start, tok_end, aux = (int(v) for v in results[c, :5])
            _raise_parse_error(
                buf, source, (n, d, l_), (code, int(row_off[c]) + row, tok_start, tok_end, aux)
            )
    rows = int(results[:, 1].sum())
    if rows < n:
        raise DataFormatError(
            source, rows + 2, None, f"the header says N={n} points but the file has only {rows}"
        )
    x_indices, x_values = _join_regions(
        x_indptr, row_off, results[:, 1], x_off, results[:, 5], x_indices, x_values
    )
    (y_indices,) = _join_regions(y_indptr, row_off, results[:, 1], y_off, results[:, 6], y_indices)
    return XCData(x_indptr, x_indices, x_values, y_indptr, y_indices, d, l_)


def _chunk_bounds(buf: np.ndarray, start: int) -> np.ndarray:
    """Byte bounds of about two chunks per thread, each starting at a line start."""
    size = buf.shape[0] - start
    n_chunks = max(1, min(2 * numba.get_num_threads(), size // _MIN_CHUNK))
    cuts = [kp.next_line_start(buf, start + k * size // n_chunks) for k in range(1, n_chunks)]
    return np.unique(np.array([start, *cuts, buf.shape[0]], dtype=np.int64))


def _count_bytes(buf: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Colons, commas and newlines per chunk; int64, shape (n_chunks, 3).

    NumPy's vectorised compare-and-count over cache-sized blocks is several times cheaper per
    byte than a scalar Numba loop.
    """
    counts = np.zeros((bounds.size - 1, 3), dtype=np.int64)
    for c in range(bounds.size - 1):
        for first in range(int(bounds[c]), int(bounds[c + 1]), _COUNT_BLOCK):
            block = buf[first : min(first + _COUNT_BLOCK, int(bounds[c + 1]))]
            for k, byte in enumerate(b":,\n"):
                counts[c, k] += np.count_nonzero(block == byte)
    return counts


def _exclusive_cumsum(a: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a)
    np.cumsum(a[:-1], out=out[1:])
    return out


def _join_regions(
    indptr: np.ndarray,
    row_off: np.ndarray,
    rows: np.ndarray,
    offsets: np.ndarray,
    used: np.ndarray,
    *arrays: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Turn per-chunk regions into one CSR: shift local row pointers, drop unused slots."""
    base = _exclusive_cumsum(used)
    for c in range(row_off.shape[0]):
        indptr[row_off[c] + 1 : row_off[c] + rows[c] + 1] += base[c]
    if np.array_equal(offsets, base) and int(used.sum()) == arrays[0].size:
        return arrays
    return tuple(
        np.concatenate([a[o : o + u] for o, u in zip(offsets, used, strict=True)]) for a in arrays
    )


def read_xc_text(path: str | Path) -> XCData:
    """Read an XC text file (see the module docstring for the accepted format).

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    XCData
        Rows in file order (not shuffled).

    Raises
    ------
    DataFormatError
        Naming file, line and token of the first violation.
    """
    path = Path(path)
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DataFormatError(path, None, None, f"cannot read file: {err.strerror}") from err
    return parse_xc_bytes(buf, path)


def write_xc_text(data: XCData, path: str | Path, precision: int = 6) -> None:
    """Write ``data`` as an XC text file, atomically.

    Parameters
    ----------
    data : XCData
        The dataset; rows are written in order, a row without labels starts with a space.
    path : str or Path
        Target file (replaced atomically).
    precision : int
        Significant digits of the values, printed like C's ``%.<precision>g`` (1..9). With the
        default 6 a float32 value survives ``read_xc_text(write_xc_text(x))`` exactly when it
        is the float32 nearest to a decimal of at most 6 significant digits (as the generator's
        values are); 9 round-trips every float32.
    """
    if not 1 <= precision <= 9:
        raise ValueError(f"precision must be in 1..9, got {precision}")
    with atomic_target(path) as tmp, open(tmp, "wb") as out:
        out.write(f"{data.n_points} {data.n_features} {data.n_labels}\n".encode())
        for first in range(0, data.n_points, _WRITE_CHUNK):
            last = min(first + _WRITE_CHUNK, data.n_points)
            nnz_x = int(data.x_indptr[last] - data.x_indptr[first])
            nnz_y = int(data.y_indptr[last] - data.y_indptr[first])
            buf = np.empty(kf.TOKEN_BYTES * nnz_x + 12 * nnz_y + 2 * (last - first), np.uint8)
            size = kf.format_rows(
                data.x_indptr, data.x_indices, data.x_values, data.y_indptr, data.y_indices,
                first, last, precision, buf,
            )  # fmt: skip
            out.write(buf[:size].data)
