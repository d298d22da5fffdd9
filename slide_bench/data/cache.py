"""Binary cache of XCData (.npz) and loading by suffix (load_dataset)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from slide_bench.atomic import atomic_target
from slide_bench.data.xc_text import read_xc_text
from slide_bench.data.xcdata import XCData
from slide_bench.errors import DataFormatError

_ARRAYS = ("x_indptr", "x_indices", "x_values", "y_indptr", "y_indices")
_FORMAT_VERSION = 1


def save_npz(data: XCData, path: str | Path) -> None:
    """Write ``data`` to an uncompressed ``.npz`` cache, atomically.

    Parameters
    ----------
    data : XCData
        Validated before writing, so a cache never holds invalid data.
    path : str or Path
        Target file; replaced only once the new file is complete.
    """
    path = Path(path)
    data.validate(path.name)
    header = np.array([_FORMAT_VERSION, data.n_features, data.n_labels], dtype=np.int64)
    with atomic_target(path, suffix=".npz") as tmp:
        np.savez(tmp, header=header, **{name: getattr(data, name) for name in _ARRAYS})


def load_npz(path: str | Path) -> XCData:
    """Load and fully validate an ``.npz`` cache written by :func:`save_npz`.

    Parameters
    ----------
    path : str or Path
        The cache file.

    Returns
    -------
    XCData

    Raises
    ------
    DataFormatError
        When the file is missing, corrupt, truncated, of another format version, or its
        arrays have wrong keys, dtypes, shapes or contents. The message says what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            path, None, None, "No such file: check the path, or run the generate/prepare step"
        )
    fix = "delete it and run the generate/prepare step again"
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if keys != {"header", *_ARRAYS}:
                raise DataFormatError(
                    path, None, None, f"not an XCData cache (keys {sorted(keys)}); {fix}"
                )
            header = npz["header"]
            arrays = {name: npz[name] for name in _ARRAYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataFormatError(
            path, None, None, f"corrupt or unreadable cache ({err}); {fix}"
        ) from err
    if header.dtype != np.int64 or header.shape != (3,) or header[0] != _FORMAT_VERSION:
        raise DataFormatError(path, None, None, f"unknown cache format version; {fix}")
    data = XCData(n_features=int(header[1]), n_labels=int(header[2]), **arrays)
    try:
        data.validate(path.name)
    except DataFormatError as err:
        raise DataFormatError(path, None, None, f"{err.detail}; {fix}") from err
    return data


def load_dataset(path: str | Path) -> XCData:
    """Load a dataset file, dispatching on its suffix: ``.txt`` text, ``.npz`` cache.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    XCData

    Raises
    ------
    DataFormatError
        On an unknown suffix or invalid contents.
    """
    path = Path(path)
    if path.suffix == ".txt":
        return read_xc_text(path)
    if path.suffix == ".npz":
        return load_npz(path)
    raise DataFormatError(path, None, None, "unknown dataset suffix (expected .txt or .npz)")
