"""Reader of the repository's small-dataset zips: one data file plus train/test split files.

Layout: ``<Name>/<Name>_data.txt`` (XC text with all points) and ``<name>_trSplit.txt`` /
``<name>_tstSplit.txt``: whitespace-separated 1-based row numbers into the data file, one
column per random split (ten in the repository's zips). Members are found by their name
endings, case-insensitively, anywhere in the zip.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from slide_bench.data.xc_text import parse_xc_bytes
from slide_bench.data.xcdata import XCData
from slide_bench.errors import ConfigError, DataFormatError

DATA_SUFFIX = "_data.txt"
TRAIN_SUFFIX = "_trsplit.txt"
TEST_SUFFIX = "_tstsplit.txt"


def _is_resource_fork(name: str) -> bool:
    return name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("._")


def find_member(names: list[str], suffix: str, archive: str | Path) -> str:
    """Return the one member of ``names`` whose basename ends with ``suffix`` (any case).

    A member named exactly ``suffix`` (without a leading underscore) wins over longer names;
    macOS resource forks (``__MACOSX/``, ``._*``) are ignored.

    Raises
    ------
    DataFormatError
        When none or several members match.
    """
    hits = [n for n in names if PurePosixPath(n).name.lower().endswith(suffix)]
    exact = [n for n in hits if PurePosixPath(n).name.lower() == suffix.lstrip("_")]
    hits = exact or [n for n in hits if not _is_resource_fork(n)]
    if len(hits) != 1:
        found = "none" if not hits else ", ".join(hits)
        raise DataFormatError(
            archive, None, None, f"expected exactly one member named '*{suffix}', found {found}"
        )
    return hits[0]


def parse_split_column(text: str, source: str, split: int, n_points: int) -> np.ndarray:
    """Return column ``split`` (1-based) of a split file as 0-based rows.

    Parameters
    ----------
    text : str
        The split file; every non-empty line holds the same number of integers.
    source : str
        Name for error messages.
    split : int
        1-based column.
    n_points : int
        N of the data file; row numbers must be in ``[1, N]`` and unique in the column.

    Returns
    -------
    ndarray of int64, shape (n_split,)
    """
    lines = text.rstrip().splitlines()
    n_cols = len(lines[0].split()) if lines else 0
    if not 1 <= split <= n_cols:
        raise ConfigError(f"split must be in 1..{n_cols} for {source}, got {split}")
    rows = np.empty(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) != n_cols or not all(f.isdigit() for f in fields):
            raise DataFormatError(
                source, i + 1, line.strip()[:60] or None, f"expected {n_cols} positive integers"
            )
        rows[i] = int(fields[split - 1])
        if not 1 <= rows[i] <= n_points:
            raise DataFormatError(
                source, i + 1, fields[split - 1], f"row number outside 1..{n_points}"
            )
    if np.unique(rows).size != rows.size:
        raise DataFormatError(source, None, None, f"split {split} lists a row twice")
    return rows - 1


def read_repo_zip(path: str | Path, split: int) -> tuple[XCData, XCData]:
    """Read train and test of one split from a repository zip.

    Parameters
    ----------
    path : str or Path
        The zip (e.g. ``Bibtex.zip``).
    split : int
        1-based split number (column of the split files).

    Returns
    -------
    train, test : XCData
        Rows in the order of the split files (not shuffled).

    Raises
    ------
    DataFormatError
        Not a zip, missing members, malformed data or split files, overlapping splits.
    ConfigError
        ``split`` outside the columns of the split files.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            members = [
                find_member(names, s, path) for s in (DATA_SUFFIX, TRAIN_SUFFIX, TEST_SUFFIX)
            ]
            raw = [zf.read(m) for m in members]
    except (zipfile.BadZipFile, OSError) as err:
        raise DataFormatError(path, None, None, f"not a readable zip archive ({err})") from err
    label = [f"{path.name}:{PurePosixPath(m).name}" for m in members]
    # a writable copy: the reader's kernels are then compiled for one buffer type only
    data = parse_xc_bytes(np.frombuffer(bytearray(raw[0]), dtype=np.uint8), label[0])
    train_rows, test_rows = (
        parse_split_column(raw[i].decode("ascii", "replace"), label[i], split, data.n_points)
        for i in (1, 2)
    )
    if np.intersect1d(train_rows, test_rows).size:
        raise DataFormatError(path, None, None, f"split {split}: train and test share rows")
    return data.take(train_rows), data.take(test_rows)
