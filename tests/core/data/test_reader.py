"""The Numba XC reader against a slow pure-Python reference parser, and the writer round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from slide_bench.data import XCData, read_xc_text, write_xc_text
from slide_bench.data import xc_text as xc_text_module


def reference_parse(text: str) -> XCData:
    """Oracle: the format read with str.split and float(), one token at a time."""
    lines = text.replace("\r", "").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    n, d, l_ = (int(v) for v in lines[0].split())
    x_indptr, x_indices, x_values, y_indptr, y_indices = [0], [], [], [0], []
    for line in lines[1:]:
        line = line.replace("\t", " ")
        label_field, _, rest = (
            (" " + line).partition(" ") if line.startswith(" ") else line.partition(" ")
        )
        labels = sorted(int(v) for v in label_field.split(",")) if label_field else []
        pairs = sorted(
            (int(t.split(":")[0]), np.float32(float(t.split(":")[1]))) for t in rest.split()
        )
        x_indices += [f for f, _ in pairs]
        x_values += [v for _, v in pairs]
        y_indices += labels
        x_indptr.append(len(x_indices))
        y_indptr.append(len(y_indices))
    assert len(x_indptr) == n + 1
    return XCData(
        np.array(x_indptr, dtype=np.int64),
        np.array(x_indices, dtype=np.int32),
        np.array(x_values, dtype=np.float32),
        np.array(y_indptr, dtype=np.int64),
        np.array(y_indices, dtype=np.int32),
        d,
        l_,
    )


def random_xc_text(rng: np.random.Generator, n: int, d: int, l_: int) -> str:
    """A valid file exercising every accepted variation of the format."""
    eol = "\r\n" if rng.random() < 0.3 else "\n"
    lines = [f"{n} {d} {l_}"]
    value_formats = ["{:.6f}", "{:.9g}", "{:g}", "{:.3e}", "{:.0f}", "{:+.4f}", "{:.12g}"]
    for _ in range(n):
        k = int(rng.integers(0, 4))
        labels = ",".join(str(v) for v in rng.choice(l_, size=k, replace=False))
        f = int(rng.integers(0, 12))
        ids = rng.choice(d, size=f, replace=False)  # unsorted on purpose
        vals = rng.standard_normal(f) * 10.0 ** rng.integers(-8, 5, size=f)
        fmts = rng.choice(value_formats, size=f)
        sep = " " if rng.random() < 0.8 else " \t "
        tokens = sep.join(f"{i}:{fmt.format(v)}" for i, fmt, v in zip(ids, fmts, vals, strict=True))
        trailing = " " if rng.random() < 0.1 else ""
        lines.append(f"{labels} {tokens}{trailing}")
    text = eol.join(lines)
    return text if rng.random() < 0.2 else text + eol  # sometimes no final newline


def assert_same(a: XCData, b: XCData) -> None:
    for name in ("x_indptr", "x_indices", "x_values", "y_indptr", "y_indices"):
        got, want = getattr(a, name), getattr(b, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert (a.n_features, a.n_labels) == (b.n_features, b.n_labels)


@pytest.mark.parametrize("seed", range(12))
def test_reader_matches_reference(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    text = random_xc_text(rng, n=int(rng.integers(1, 300)), d=int(rng.integers(20, 5000)), l_=50)
    path = tmp_path / "random.txt"
    path.write_bytes(text.encode())
    data = read_xc_text(path)
    data.validate()
    assert_same(data, reference_parse(text))


@pytest.mark.parametrize("min_chunk", [1, 97, 4096])
def test_chunked_parse_matches_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, min_chunk: int
) -> None:
    """Files split into many chunks (tiny chunk size) parse exactly like the oracle."""
    monkeypatch.setattr(xc_text_module, "_MIN_CHUNK", min_chunk)
    rng = np.random.default_rng(100 + min_chunk)
    text = random_xc_text(rng, n=500, d=1000, l_=40)
    path = tmp_path / "chunks.txt"
    path.write_bytes(text.encode())
    assert_same(read_xc_text(path), reference_parse(text))


def test_chunked_error_reports_global_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xc_text_module, "_MIN_CHUNK", 16)
    lines = ["400 10 5"] + ["1 2:0.5"] * 399 + ["1 2:x"]
    path = tmp_path / "late_error.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match=r"late_error.txt, line 401, field '2:x'"):
        read_xc_text(path)


def test_points_without_labels_or_features_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "edge.txt"
    path.write_bytes(b"4 6 3\n 1:0.5 5:2\n2,0\n \n1 0:1e-3")
    data = read_xc_text(path)
    np.testing.assert_array_equal(data.y_indptr, [0, 0, 2, 2, 3])
    np.testing.assert_array_equal(data.y_indices, [0, 2, 1])
    np.testing.assert_array_equal(data.x_indptr, [0, 2, 2, 2, 3])
    np.testing.assert_array_equal(data.x_values, np.float32([0.5, 2.0, 1e-3]))


def test_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = reference_parse(random_xc_text(rng, n=200, d=300, l_=20))
    # values representable at the printed precision: the float32 nearest a 6-digit decimal
    six = np.array([np.float32(float(f"{v:.6g}")) for v in data.x_values], dtype=np.float32)
    data = XCData(data.x_indptr, data.x_indices, six, data.y_indptr, data.y_indices, 300, 20)
    path = tmp_path / "out.txt"
    write_xc_text(data, path)
    assert_same(read_xc_text(path), data)
    write_xc_text(read_xc_text(path), tmp_path / "again.txt")
    assert (tmp_path / "again.txt").read_bytes() == path.read_bytes()


def test_exact_decimal_parsing_matches_python_float() -> None:
    """Values with up to 15 significant digits parse to float32(float(text)) exactly."""
    rng = np.random.default_rng(11)
    mantissas = rng.integers(1, 10**15, size=3000)
    exponents = rng.integers(-30, 20, size=3000)
    tokens = [f"{m}e{e}" for m, e in zip(mantissas, exponents, strict=True)]
    tokens += [
        f"{v:.{p}g}" for v, p in zip(rng.random(3000), rng.integers(1, 16, 3000), strict=True)
    ]
    text = f"1 {len(tokens)} 1\n0 " + " ".join(f"{i}:{t}" for i, t in enumerate(tokens)) + "\n"
    buf = np.frombuffer(bytearray(text.encode()), dtype=np.uint8)
    got = xc_text_module.parse_xc_bytes(buf, "decimals.txt").x_values
    want = np.array([np.float32(float(t)) for t in tokens], dtype=np.float32)
    np.testing.assert_array_equal(got, want)


def python_xc_text(data: XCData, precision: int) -> str:
    """Oracle of the writer: Python's own %g formatting, one token at a time."""
    lines = [f"{data.n_points} {data.n_features} {data.n_labels}"]
    for r in range(data.n_points):
        labels = ",".join(str(v) for v in data.y_indices[data.y_indptr[r] : data.y_indptr[r + 1]])
        span = slice(data.x_indptr[r], data.x_indptr[r + 1])
        pairs = zip(data.x_indices[span], data.x_values[span], strict=True)
        lines.append(labels + " " + " ".join(f"{i}:{float(v):.{precision}g}" for i, v in pairs))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("precision", [6, 9])
def test_writer_prints_like_python_g_format(tmp_path: Path, precision: int) -> None:
    rng = np.random.default_rng(precision)
    data = reference_parse(random_xc_text(rng, n=400, d=500, l_=30))
    wild = rng.standard_normal(data.x_values.size) * 10.0 ** rng.integers(
        -40, 38, data.x_values.size
    )
    data = dataclasses.replace(data, x_values=wild.astype(np.float32))
    path = tmp_path / "g.txt"
    write_xc_text(data, path, precision=precision)
    expected = python_xc_text(data, precision)
    assert path.read_text() == expected
    if precision == 9:  # nine digits round-trip every float32
        assert_same(read_xc_text(path), data)
