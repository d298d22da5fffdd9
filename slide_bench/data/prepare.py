"""The prepare step: verified archive -> shuffled ``<root>/prepared/<key>/{train,test}.npz``.

Both splits are always shuffled (``shuffle(data, seed)``): the large datasets' files are
sorted by label and unshuffled files inflate early P@1. A ``meta.json`` written last records
the split and seed; a later call with the same arguments finds valid outputs and returns at once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from slide_bench.atomic import atomic_target
from slide_bench.data.archive import Layout, safe_extract
from slide_bench.data.cache import load_npz, save_npz
from slide_bench.data.download import fetch_archive
from slide_bench.data.registry import REPO_SPLIT, DatasetEntry, get_entry
from slide_bench.data.repo_zip import read_repo_zip
from slide_bench.data.xc_text import read_xc_text
from slide_bench.data.xcdata import XCData, shuffle
from slide_bench.errors import ConfigError, DataFormatError, SuiteError

_META = "meta.json"


def _expected_shapes(entry: DatasetEntry) -> dict[str, tuple[int, int, int]]:
    return {
        "train": (entry.n_train, entry.n_features, entry.n_labels),
        "test": (entry.n_test, entry.n_features, entry.n_labels),
    }


def _shape(data: XCData) -> tuple[int, int, int]:
    return data.n_points, data.n_features, data.n_labels


def _outputs_valid(out_dir: Path, entry: DatasetEntry, split: int, seed: int) -> bool:
    try:
        meta = json.loads((out_dir / _META).read_text())
        if meta != {"dataset": entry.key, "split": split, "seed": seed, "shuffled": True}:
            return False
        return all(
            _shape(load_npz(out_dir / f"{part}.npz")) == shape
            for part, shape in _expected_shapes(entry).items()
        )
    except (OSError, ValueError, SuiteError):
        return False


def _read_archive(
    path: Path, layout: Layout, entry: DatasetEntry, root: Path, split: int
) -> tuple[XCData, XCData]:
    if layout.kind == REPO_SPLIT:
        return read_repo_zip(path, split)
    if split != 1:
        raise ConfigError(f"{entry.title} has one fixed train/test split: use split 1")
    extracted = safe_extract(path, root / "raw" / entry.key / "extracted")
    try:
        return tuple(read_xc_text(extracted / member) for member in layout.members)
    finally:
        shutil.rmtree(extracted, ignore_errors=True)


def prepare(
    name: str,
    root: str | Path = "data",
    archive: str | Path | None = None,
    split: int = 1,
    seed: int = 0,
) -> Path:
    """Produce ``<root>/prepared/<key>/{train,test}.npz`` for a registered dataset.

    Parameters
    ----------
    name : str
        Dataset name or key (see :data:`slide_bench.data.registry.DATASETS`).
    root : str or Path
        Data root: archives under ``<root>/raw``, outputs under ``<root>/prepared``.
    archive : str or Path, optional
        A local archive to use instead of ``<root>/raw/<key>/<archive_name>`` / a download.
    split : int
        1-based split column for repository split zips (must be 1 for train/test archives).
    seed : int
        Shuffle seed of both splits.

    Returns
    -------
    Path
        The output folder.

    Raises
    ------
    SuiteError
        Unknown dataset, download/verification failure, malformed data, size mismatch.
    """
    entry = get_entry(name)
    root = Path(root)
    out_dir = root / "prepared" / entry.key
    if _outputs_valid(out_dir, entry, split, seed):
        return out_dir
    path, layout = fetch_archive(entry, root, archive)
    splits = _read_archive(path, layout, entry, root, split)
    parts = dict(zip(("train", "test"), splits, strict=True))
    for part, shape in _expected_shapes(entry).items():
        if _shape(parts[part]) != shape:
            raise DataFormatError(
                path,
                None,
                None,
                f"{part} split has (N, D, L) = {_shape(parts[part])}, expected {shape}",
            )
    (out_dir / _META).unlink(missing_ok=True)
    for part, data in parts.items():
        save_npz(shuffle(data, seed), out_dir / f"{part}.npz")
    with atomic_target(out_dir / _META) as tmp:
        meta = {"dataset": entry.key, "split": split, "seed": seed, "shuffled": True}
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
    return out_dir
