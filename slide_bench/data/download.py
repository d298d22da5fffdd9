"""Getting a dataset archive: from a local copy or Google Drive, always verified before use.

Where the archive lives: ``<root>/raw/<key>/<archive_name>`` (e.g.
``data/raw/bibtex/Bibtex.zip``). A user without internet places the file there, or passes
``archive=`` (``--archive``); either way it is verified exactly like a download:

1. size and md5/sha256 when the registry knows them;
2. it opens as a zip whose members are all safe (see :mod:`slide_bench.data.archive`);
3. its data members are where the registry's layout says, and their headers hold the expected
   N, D and L;
4. without a known checksum, every member's CRC is checked (catches truncation and corruption).

Downloads go to a temporary file in the same folder and are renamed into place only after they
pass verification; a failed or corrupt download is deleted, and the next Drive id is tried.
"""

from __future__ import annotations

import glob
import hashlib
import zipfile
from pathlib import Path, PurePosixPath

import gdown

from slide_bench.atomic import atomic_target
from slide_bench.data.archive import Layout, check_members, detect_layout
from slide_bench.data.registry import REPO_SPLIT, DatasetEntry, DriveFile
from slide_bench.errors import ChecksumError, DownloadError, SuiteError

_HASH_BLOCK = 1 << 22


def archive_path(entry: DatasetEntry, root: str | Path) -> Path:
    """Where the archive of ``entry`` is kept: ``<root>/raw/<key>/<archive_name>``."""
    return Path(root) / "raw" / entry.key / entry.archive_name


def _hashes(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


def _header(zf: zipfile.ZipFile, member: str) -> tuple[int, ...]:
    with zf.open(member) as f:
        first = f.readline(256).decode("ascii", "replace").split()
    return (
        tuple(int(v) for v in first) if len(first) == 3 and all(v.isdigit() for v in first) else ()
    )


def verify_archive(path: Path, entry: DatasetEntry) -> Layout:
    """Verify an archive against the registry entry (see the module docstring).

    Parameters
    ----------
    path : Path
        The archive file.
    entry : DatasetEntry
        What it must contain.

    Returns
    -------
    Layout
        Its data members.

    Raises
    ------
    ChecksumError
        Size, checksum, layout, header or CRC mismatch; not a zip.
    DownloadError
        An unsafe member.
    """
    name = path.name
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise ChecksumError(
            f"{name}: {size:,} bytes, expected {entry.size:,} (incomplete or other file)"
        )
    if entry.has_checksum:
        md5, sha = _hashes(path)
        if (entry.md5 and md5 != entry.md5) or (entry.sha256 and sha != entry.sha256):
            want = f"md5 {entry.md5}" if entry.md5 else f"sha256 {entry.sha256}"
            got = f"md5 {md5}" if entry.md5 else f"sha256 {sha}"
            raise ChecksumError(f"{name}: {got}, expected {want} (corrupt or other file)")
    try:
        with zipfile.ZipFile(path) as zf:
            check_members(zf, path)
            layout = detect_layout(zf.namelist(), path)
            if entry.layout is not None and layout.kind != entry.layout:
                raise ChecksumError(
                    f"{name}: holds a {layout.kind} layout, expected {entry.layout}"
                )
            d, l_ = entry.n_features, entry.n_labels
            if layout.kind == REPO_SPLIT:
                expected = {layout.members[0]: (entry.n_train + entry.n_test, d, l_)}
            else:
                expected = dict(
                    zip(
                        layout.members, ((entry.n_train, d, l_), (entry.n_test, d, l_)), strict=True
                    )
                )
            for member, want in expected.items():
                got = _header(zf, member)
                if got != want:
                    raise ChecksumError(
                        f"{name}: header of {PurePosixPath(member).name} is {got or 'unreadable'}, "
                        f"expected N D L = {want} (corrupt or other file)"
                    )
            if not entry.has_checksum and (bad := zf.testzip()) is not None:
                raise ChecksumError(f"{name}: member {bad} fails its CRC check (corrupt file)")
    except (zipfile.BadZipFile, EOFError) as err:
        raise ChecksumError(
            f"{name}: not a valid zip archive ({err}); a download may have saved an HTML page "
            "(Drive quota or a dead link) or stopped early"
        ) from err
    return layout


def _download(drive: DriveFile, output: Path) -> None:
    """Fetch one Drive file to ``output`` with gdown (progress bar on stderr)."""
    if drive.resource_key:
        # gdown rebuilds drive.google.com URLs from the id and drops the resource key,
        # so pre-2021 files go through the direct download endpoint
        url = (
            "https://drive.usercontent.google.com/download?export=download&confirm=t"
            f"&id={drive.file_id}&resourcekey={drive.resource_key}"
        )
        result = gdown.download(url=url, output=str(output), quiet=False)
    else:
        result = gdown.download(id=drive.file_id, output=str(output), quiet=False)
    if result is None:
        raise DownloadError("gdown returned no file")


def _remove_gdown_partials(output: Path) -> None:
    """Delete what gdown keeps of a broken transfer for a resume (``<output>XXXXXXXX.part``)."""
    for partial in output.parent.glob(f"{glob.escape(output.name)}?*.part"):
        partial.unlink(missing_ok=True)


def fetch_archive(
    entry: DatasetEntry, root: str | Path, archive: str | Path | None = None
) -> tuple[Path, Layout]:
    """Return a verified archive of ``entry`` and its layout, downloading it when needed.

    Parameters
    ----------
    entry : DatasetEntry
        The dataset.
    root : str or Path
        Data root (the archive is kept under ``<root>/raw/<key>/``).
    archive : str or Path, optional
        A local copy to use instead (verified, never modified or deleted).

    Returns
    -------
    path : Path
        The verified archive.
    layout : Layout
        Its data members.

    Raises
    ------
    DownloadError, ChecksumError
        With what to do next (including where to place the archive by hand).
    """
    target = archive_path(entry, root)
    manual = f"place {entry.archive_name} at {target} (or pass --archive PATH)"
    if archive is not None:
        path = Path(archive)
        if not path.is_file():
            raise DownloadError(f"archive {path} does not exist")
        return path, _verify_local(path, entry, "pass a correct copy")
    if target.is_file():
        return target, _verify_local(target, entry, f"delete it to download again, or {manual}")
    if not entry.drive:
        raise DownloadError(
            f"no download link for {entry.title} is known to us: get {entry.archive_name} from the "
            f"Extreme Classification Repository and {manual}"
        )
    failures = []
    for drive in entry.drive:
        try:
            with atomic_target(target) as tmp:
                try:
                    _download(drive, tmp)
                except (
                    Exception
                ) as err:  # any failure (network, quota, gdown) means: try the next copy
                    raise DownloadError(f"{type(err).__name__}: {err}") from err
                finally:
                    _remove_gdown_partials(tmp)
                layout = verify_archive(tmp, entry)
            return target, layout
        except SuiteError as err:
            failures.append(f"Drive id {drive.file_id}: {err}")
    raise DownloadError(
        f"could not get a valid copy of {entry.title} ({'; '.join(failures)}); "
        f"the partial files were deleted. Download it in a browser and {manual}"
    )


def _verify_local(path: Path, entry: DatasetEntry, advice: str) -> Layout:
    try:
        return verify_archive(path, entry)
    except ChecksumError as err:
        raise ChecksumError(f"{err}; {path} was not used: {advice}") from err
