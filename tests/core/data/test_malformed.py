"""Every malformed-file case gives one clear DataFormatError naming file, line and token."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slide_bench.data import XCData, load_npz, read_repo_zip, read_xc_text, save_npz
from slide_bench.errors import DataFormatError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "malformed"

# file -> (line, token or None, words the message must contain)
CASES = {
    "bad_header.txt": (1, "3 10", "header"),
    "empty.txt": (1, None, "empty file"),
    "count_too_few.txt": (4, None, "N=3 points but the file has only 2"),
    "count_too_many.txt": (4, "0", "more point lines than the header's N=2"),
    "feature_out_of_range.txt": (3, "10:0.25", "must be < D=10"),
    "label_out_of_range.txt": (3, "5", "must be < L=5"),
    "negative_feature.txt": (3, "-4:1", "negative feature id"),
    "negative_label.txt": (3, "-2", "negative label id"),
    "malformed_value.txt": (3, "3:abc", "malformed feature 'f:v'"),
    "malformed_pair.txt": (3, "4=1", "malformed feature 'f:v'"),
    "malformed_label.txt": (3, "2;3", "malformed label id"),
    "features_without_labels_field.txt": (3, "4:1", "must start with a space"),
    "nan_value.txt": (3, "4:nan", "non-finite"),
    "inf_value.txt": (3, "4:-inf", "non-finite"),
    "float32_overflow.txt": (3, "4:1e39", "float32 range"),
    "duplicate_feature.txt": (3, "4:2", "duplicate feature id 4"),
    "duplicate_label.txt": (3, "2", "duplicate label id 2"),
    "truncated_last_line.txt": (4, "5:", "truncated last line"),
    "blank_line.txt": (3, None, "blank line"),
    "trailing_blank_line.txt": (5, None, "blank line"),
}


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.txt")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_file_error(name: str) -> None:
    line, token, words = CASES[name]
    with pytest.raises(DataFormatError) as info:
        read_xc_text(FIXTURES / name)
    err = info.value
    assert (err.line, err.field) == (line, token)
    assert isinstance(err.line, int)
    assert words in err.detail
    prefix = f"{name}, line {line}" + (f", field {token!r}" if token is not None else "")
    assert str(err) == f"{prefix}: {err.detail}"


@pytest.mark.slow
def test_cli_on_malformed_file_exits_2_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "slide_bench.data", "stats", str(FIXTURES / "nan_value.txt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "error: nan_value.txt, line 3, field '4:nan': "
        "non-finite feature value (nan, inf, or beyond float32 range)"
    )


def _small() -> XCData:
    return XCData(
        np.array([0, 2, 3], dtype=np.int64),
        np.array([1, 4, 0], dtype=np.int32),
        np.array([0.5, 1.0, 2.0], dtype=np.float32),
        np.array([0, 1, 1], dtype=np.int64),
        np.array([2], dtype=np.int32),
        5,
        3,
    )


def test_corrupt_npz_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "train.npz"
    save_npz(_small(), path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match=r"train.npz: corrupt or unreadable cache.*delete it"):
        load_npz(path)


def test_npz_with_wrong_dtype_or_range_is_refused(tmp_path: Path) -> None:
    good = _small()
    path = tmp_path / "bad.npz"
    header = np.array([1, 5, 3], dtype=np.int64)
    arrays = {k: getattr(good, k) for k in ("x_indptr", "x_indices", "y_indptr", "y_indices")}
    np.savez(path, header=header, x_values=good.x_values.astype(np.float64), **arrays)
    with pytest.raises(DataFormatError, match="x_values must be a 1-d float32 array"):
        load_npz(path)
    arrays["x_indices"] = np.array([1, 5, 0], dtype=np.int32)
    np.savez(path, header=header, x_values=good.x_values, **arrays)
    with pytest.raises(DataFormatError, match=r"feature id out of range \[0, 5\)"):
        load_npz(path)


def test_repo_zip_with_bad_split_file(tmp_path: Path) -> None:
    path = tmp_path / "Tiny.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Tiny/Tiny_data.txt", "3 4 2\n0 1:1\n1 2:1\n 3:1\n")
        zf.writestr("Tiny/tiny_trSplit.txt", "1 2\n2 3\n")
        zf.writestr("Tiny/tiny_tstSplit.txt", "3 4\n")
    with pytest.raises(DataFormatError, match=r"tiny_tstSplit.txt, line 1, field '4': row number"):
        read_repo_zip(path, 2)
    train, test = read_repo_zip(path, 1)
    np.testing.assert_array_equal(train.x_indices, [1, 2])
    np.testing.assert_array_equal(test.y_indptr, [0, 0])
