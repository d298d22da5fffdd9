"""Zip archives of the repository: member safety checks, layout detection, safe extraction.

An archive is refused (never partly extracted) when a member is an absolute path, contains a
``..`` component or a backslash, is a symlink or another non-regular file, or when the archive
declares more than ``max_bytes`` in total. Extraction writes into a temporary folder next to
the target, enforces each member's declared size while streaming (a lying header cannot inflate
it), then renames the folder into place.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from slide_bench.data.registry import REPO_SPLIT, TRAIN_TEST
from slide_bench.data.repo_zip import DATA_SUFFIX, TEST_SUFFIX, TRAIN_SUFFIX, find_member
from slide_bench.errors import DataFormatError, DownloadError

MAX_EXTRACT_BYTES = 32 * 2**30  # larger than any XC bag-of-words release
_COPY_BLOCK = 1 << 20


@dataclass(frozen=True)
class Layout:
    """Which members of an archive hold what."""

    kind: str  # REPO_SPLIT or TRAIN_TEST
    members: tuple[str, ...]  # (data, train split, test split) or (train, test)


def check_members(zf: zipfile.ZipFile, archive: Path, max_bytes: int = MAX_EXTRACT_BYTES) -> None:
    """Refuse archives whose members could escape the target folder or exhaust the disk.

    Raises
    ------
    DownloadError
        Naming the offending member and why.
    """
    total = 0
    for info in zf.infolist():
        name = info.filename
        parts = PurePosixPath(name).parts
        mode = info.external_attr >> 16
        reason = None
        if name.startswith("/") or "\\" in name or (parts and ":" in parts[0]):
            reason = "has an absolute or non-portable path"
        elif ".." in parts:
            reason = "escapes the target folder ('..')"
        elif stat.S_ISLNK(mode):
            reason = "is a symbolic link"
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            reason = "is not a regular file"
        if reason:
            raise DownloadError(
                f"{archive.name}: unsafe archive, member {name!r} {reason}; refusing to use it"
            )
        total += info.file_size
    if total > max_bytes:
        raise DownloadError(
            f"{archive.name}: unpacks to {total:,} bytes, over the limit of {max_bytes:,}; "
            "refusing to extract"
        )


def detect_layout(names: list[str], archive: Path) -> Layout:
    """Find the data members: repository split files, else a ``*train.txt`` / ``*test.txt`` pair.

    Raises
    ------
    DataFormatError
        When neither layout is present (or a member name is ambiguous).
    """
    lower = [PurePosixPath(n).name.lower() for n in names]
    if any(n.endswith(DATA_SUFFIX) for n in lower):
        suffixes = (DATA_SUFFIX, TRAIN_SUFFIX, TEST_SUFFIX)
        return Layout(REPO_SPLIT, tuple(find_member(names, s, archive) for s in suffixes))
    if any(n.endswith("train.txt") for n in lower):
        return Layout(
            TRAIN_TEST, tuple(find_member(names, s, archive) for s in ("train.txt", "test.txt"))
        )
    raise DataFormatError(
        archive,
        None,
        None,
        "no dataset files found: expected '<Name>_data.txt' with '_trSplit.txt'/'_tstSplit.txt', "
        "or 'train.txt' and 'test.txt'",
    )


def _copy_limited(src: IO[bytes], dst: IO[bytes], limit: int, name: str) -> None:
    written = 0
    while block := src.read(_COPY_BLOCK):
        written += len(block)
        if written > limit:
            raise DownloadError(f"member {name!r} is larger than its header says; refusing it")
        dst.write(block)


def safe_extract(archive: Path, dest: Path, max_bytes: int = MAX_EXTRACT_BYTES) -> Path:
    """Extract ``archive`` into the folder ``dest`` atomically (replacing an existing one).

    Parameters
    ----------
    archive : Path
        A zip file.
    dest : Path
        Target folder; it appears only once everything is extracted.
    max_bytes : int
        Limit on the total uncompressed size.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DownloadError
        Unsafe member, size limit exceeded, or a corrupt archive.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            check_members(zf, archive, max_bytes)
            root = tmp.resolve()
            for info in zf.infolist():
                target = (tmp / info.filename).resolve()
                if not target.is_relative_to(root):
                    raise DownloadError(f"member {info.filename!r} escapes the target folder")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    _copy_limited(src, dst, info.file_size, info.filename)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except (zipfile.BadZipFile, OSError) as err:
        raise DownloadError(f"{archive.name}: cannot extract ({err})") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
