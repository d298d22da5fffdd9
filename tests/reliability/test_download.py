"""Fault injection on getting data: interrupted transfers, damaged and hostile archives, extraction.

Never uses the network: gdown's transport is replaced by a local copy of the real Bibtex zip that
behaves like gdown does (bytes go to gdown's own ``<output>XXXXXXXX.part`` file, which gdown keeps
for a later resume when the transfer breaks, and is renamed onto ``output`` on success). What
``tests/core/data/test_prepare.py`` already covers (fallback between Drive ids, checksum of a placed
archive, unsafe members of a synthetic zip, the declared-size limit) is not repeated; here:

* a transfer broken mid-way, or the process SIGKILLed mid-transfer, leaves no file that passes as
  the archive, and the next attempt gets a verified copy;
* without a known checksum a damaged download is still caught (member CRCs), and deleted;
* hostile variants of the real Bibtex zip (a ``../`` member, a symlink member, a member larger
  than its header says) are refused at download, at verification and at extraction;
* extraction is atomic: a failure half-way leaves a previously extracted folder untouched and no
  temporary folder behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import gdown
import pytest
import requests

from slide_bench.data import prepare
from slide_bench.data.archive import safe_extract
from slide_bench.data.download import archive_path, fetch_archive, verify_archive
from slide_bench.data.registry import get_entry
from slide_bench.errors import ChecksumError, DownloadError

REPO = Path(__file__).resolve().parents[2]
BIBTEX = get_entry("Bibtex")
#: the same dataset as the registry knows it when no checksum or size is published
BIBTEX_NO_SUM = dataclasses.replace(BIBTEX, md5=None, sha256=None, size=None)


def gdown_like(payload: bytes, fail_after: int | None = None, delay: float = 0.0):
    """A stand-in for ``gdown.download`` that writes ``payload`` the way gdown does.

    With ``fail_after`` the connection breaks after that many bytes: gdown raises and keeps its
    partial file for a resume. ``delay`` sleeps between 64 KiB chunks (a slow link).
    """

    def download(url=None, output=None, id=None, quiet=False, **kw):
        fd, part = tempfile.mkstemp(prefix=os.path.basename(output), suffix=".part",
                                    dir=os.path.dirname(output))
        with os.fdopen(fd, "wb") as fh:
            for start in range(0, len(payload), 1 << 16):
                if fail_after is not None and start >= fail_after:
                    raise requests.exceptions.ConnectionError("Connection reset by peer")
                fh.write(payload[start : start + (1 << 16)])
                fh.flush()
                time.sleep(delay)
        os.replace(part, output)
        return output

    return download


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_broken_transfer_leaves_nothing_and_the_retry_is_verified(
    tmp_path, bibtex_zip, monkeypatch
):
    good = bibtex_zip.read_bytes()
    target = archive_path(BIBTEX, tmp_path)
    monkeypatch.setattr(gdown, "download", gdown_like(good, fail_after=len(good) // 2))
    with pytest.raises(DownloadError) as info:
        fetch_archive(BIBTEX, tmp_path)
    message = str(info.value)
    assert "ConnectionError" in message and "Connection reset" in message  # what happened
    assert f"place Bibtex.zip at {target}" in message  # what to do
    assert not target.exists()
    # the message says the partial files were deleted: gdown's resumable part file included
    assert leftovers(target.parent) == [], "a broken transfer left files behind"

    monkeypatch.setattr(gdown, "download", gdown_like(good))
    path, _ = fetch_archive(BIBTEX, tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BIBTEX.sha256
    assert leftovers(target.parent) == ["Bibtex.zip"]


KILL_SCRIPT = """
import sys, gdown
sys.path.insert(0, {tests!r})
from test_download import BIBTEX, gdown_like
from pathlib import Path
from slide_bench.data.download import fetch_archive
gdown.download = gdown_like(Path({zip!r}).read_bytes(), delay=0.05)
fetch_archive(BIBTEX, {root!r})
print("finished")
"""


@pytest.mark.slow
def test_sigkill_mid_transfer_leaves_nothing_that_passes_as_complete(
    tmp_path, bibtex_zip, monkeypatch
):
    root = tmp_path / "data"
    target = archive_path(BIBTEX, root)
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), zip=str(bibtex_zip),
                                root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            parts = list(target.parent.glob("*.part")) if target.parent.exists() else []
            if any(p.stat().st_size > 100_000 for p in parts):
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    # nothing carries the archive's name; whatever the kill left does not verify
    assert not target.exists()
    left = [target.parent / name for name in leftovers(target.parent)]
    assert left, "the kill should have interrupted a transfer in progress"
    for path in left:
        assert path.name.startswith(".") and path.name.endswith(".part"), path.name
        with pytest.raises((ChecksumError, DownloadError)):
            verify_archive(path, BIBTEX)
    # the next run downloads again and verifies; prepare then works from it
    monkeypatch.setattr(gdown, "download", gdown_like(bibtex_zip.read_bytes()))
    out = prepare("bibtex", root=root)
    assert (out / "train.npz").exists()
    assert hashlib.sha256(target.read_bytes()).hexdigest() == BIBTEX.sha256


@pytest.mark.parametrize("damage", ["truncate", "flip-in-member", "html"])
def test_damaged_download_without_a_known_checksum_is_caught_and_deleted(
    tmp_path, bibtex_zip, monkeypatch, damage
):
    raw = bytearray(bibtex_zip.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) - 1000]
    elif damage == "flip-in-member":
        raw[len(raw) // 2] ^= 0x55  # inside the compressed data member: only the CRC sees it
    else:
        raw = bytearray(b"<!DOCTYPE html><html>Google Drive - Quota exceeded</html>")
    monkeypatch.setattr(gdown, "download", gdown_like(bytes(raw)))
    target = archive_path(BIBTEX_NO_SUM, tmp_path)
    with pytest.raises(DownloadError, match=r"could not get a valid copy of Bibtex") as info:
        fetch_archive(BIBTEX_NO_SUM, tmp_path)
    assert re.search(r"(CRC|not a valid zip|corrupt|header of)", str(info.value)), info.value
    assert f"place Bibtex.zip at {target}" in str(info.value)
    assert leftovers(target.parent) == []


def hostile_bibtex(bibtex_zip: Path, out: Path, name: str, mode: int, data: bytes) -> Path:
    """The real Bibtex zip plus one hostile member."""
    with zipfile.ZipFile(bibtex_zip) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        extra = zipfile.ZipInfo(name)
        extra.external_attr = mode << 16
        dst.writestr(extra, data)
    return out


HOSTILE = {
    "dotdot": ("../evil.txt", 0o100644, b"escaped", r"escapes the target folder"),
    "deep-dotdot": ("Bibtex/../../evil.txt", 0o100644, b"escaped", r"escapes the target folder"),
    "absolute": ("/tmp/evil.txt", 0o100644, b"escaped", r"absolute"),
    "symlink-out": ("Bibtex/link", stat.S_IFLNK | 0o777, b"/etc/passwd", r"symbolic link"),
    "fifo": ("Bibtex/pipe", stat.S_IFIFO | 0o644, b"", r"not a regular file"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_bibtex_is_refused_everywhere_and_nothing_escapes(
    tmp_path, bibtex_zip, monkeypatch, kind
):
    name, mode, data, reason = HOSTILE[kind]
    evil = hostile_bibtex(bibtex_zip, tmp_path / "Bibtex.zip", name, mode, data)
    # downloaded: refused and deleted
    root = tmp_path / "dl"
    monkeypatch.setattr(gdown, "download", gdown_like(evil.read_bytes()))
    with pytest.raises(DownloadError, match=reason):
        fetch_archive(BIBTEX_NO_SUM, root)
    assert leftovers(archive_path(BIBTEX_NO_SUM, root).parent) == []
    # given by hand: refused, kept (it is the user's file)
    with pytest.raises(DownloadError, match=reason):
        fetch_archive(BIBTEX_NO_SUM, tmp_path / "local", archive=evil)
    assert evil.exists()
    # extracted directly: refused before anything is written; an existing folder survives
    dest = tmp_path / "x" / "extracted"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("previous extraction")
    with pytest.raises(DownloadError, match=reason):
        safe_extract(evil, dest)
    assert leftovers(dest) == ["old.txt"] and leftovers(dest.parent) == ["extracted"]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "x" / "evil.txt").exists()


def lying_member(bibtex_zip: Path, out: Path) -> Path:
    """Bibtex with its last member's central-directory size cut to 100 bytes (a lying header)."""
    raw = bytearray(bibtex_zip.read_bytes())
    eocd = raw.rfind(b"PK\x05\x06")
    count = int.from_bytes(raw[eocd + 10 : eocd + 12], "little")
    record = int.from_bytes(raw[eocd + 16 : eocd + 20], "little")  # first central record
    for _ in range(count - 1):
        assert raw[record : record + 4] == b"PK\x01\x02"
        lengths = [int.from_bytes(raw[record + o : record + o + 2], "little") for o in (28, 30, 32)]
        record += 46 + sum(lengths)
    assert raw[record : record + 4] == b"PK\x01\x02"
    raw[record + 24 : record + 28] = (100).to_bytes(4, "little")  # uncompressed size
    out.write_bytes(bytes(raw))
    with zipfile.ZipFile(out) as zf:
        assert zf.infolist()[-1].file_size == 100
    return out


def test_extraction_is_atomic_when_a_member_lies_about_its_size(tmp_path, bibtex_zip):
    liar = lying_member(bibtex_zip, tmp_path / "Bibtex.zip")
    dest = tmp_path / "x" / "extracted"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("previous extraction")
    with pytest.raises(DownloadError, match=r"larger than its header says|cannot extract"):
        safe_extract(liar, dest)
    # the earlier members were extracted into a temporary folder, which is gone again
    assert leftovers(dest) == ["old.txt"] and leftovers(dest.parent) == ["extracted"]


def test_extraction_size_limit_on_the_real_archive_keeps_the_previous_folder(
    tmp_path, bibtex_zip
):
    dest = tmp_path / "x" / "extracted"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("previous extraction")
    with pytest.raises(DownloadError, match=r"unpacks to [\d,]+ bytes, over the limit of 1,000"):
        safe_extract(bibtex_zip, dest, max_bytes=1_000)
    assert leftovers(dest) == ["old.txt"] and leftovers(dest.parent) == ["extracted"]
    # a good extraction replaces the folder as a whole
    safe_extract(bibtex_zip, dest)
    with zipfile.ZipFile(bibtex_zip) as zf:
        files = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
    assert not (dest / "old.txt").exists()
    assert leftovers(dest.parent) == ["extracted"]


@pytest.mark.slow
def test_extraction_interrupted_by_a_full_disk_leaves_the_previous_folder(
    tmp_path, bibtex_zip
):
    """Extraction in a subprocess whose file-size limit (RLIMIT_FSIZE) is below a member's size."""
    dest = tmp_path / "x" / "extracted"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("previous extraction")
    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from slide_bench.data.archive import safe_extract\n"
        "from slide_bench.errors import DownloadError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
        "try:\n"
        f"    safe_extract(Path({str(bibtex_zip)!r}), Path({str(dest)!r}))\n"
        "except DownloadError as err:\n"
        "    print(err); sys.exit(2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot extract" in proc.stdout and "File too large" in proc.stdout
    assert leftovers(dest) == ["old.txt"] and leftovers(dest.parent) == ["extracted"]



PREPARE_SCRIPT = """
import sys
from slide_bench.data import prepare
prepare("bibtex", root={root!r}, seed={seed})
"""


@pytest.mark.slow
def test_prepare_killed_at_random_moments_never_leaves_outputs_that_pass_as_valid(
    tmp_path, bibtex_zip
):
    """``prepare`` marks its outputs valid (meta.json) last: a kill anywhere leaves either the
    previous valid outputs or outputs that the next call recognises as incomplete and redoes."""
    import random

    import numpy as np

    from slide_bench.data import load_npz, read_repo_zip, shuffle

    root = tmp_path / "data"
    placed = archive_path(BIBTEX, root)
    placed.parent.mkdir(parents=True)
    placed.write_bytes(bibtex_zip.read_bytes())
    out = root / "prepared" / "bibtex"
    rng = random.Random("prepare-kills")
    # seed 0 first, then a re-prepare with seed 1 killed at random moments
    subprocess.run([sys.executable, "-c", PREPARE_SCRIPT.format(root=str(root), seed=0)],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    # how long a whole (warm) re-prepare takes here, so that kills land inside one on a fast
    # idle machine as on a loaded one
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", PREPARE_SCRIPT.format(root=str(root), seed=2)],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    duration = time.monotonic() - t0
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", PREPARE_SCRIPT.format(root=str(root), seed=1)], cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(duration * rng.uniform(0.2, 0.9))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        finally:
            proc.wait()
        meta = out / "meta.json"
        if meta.exists() and '"seed": 1' in meta.read_text():
            break  # it finished
    # the next call either keeps valid outputs or redoes them; the result is the seed-1 data
    raw_train, raw_test = read_repo_zip(bibtex_zip, 1)
    prepare("bibtex", root=root, seed=1)
    for part, raw in (("train", raw_train), ("test", raw_test)):
        got = load_npz(out / f"{part}.npz")
        np.testing.assert_array_equal(got.y_indices, shuffle(raw, 1).y_indices)
        np.testing.assert_array_equal(got.x_values, shuffle(raw, 1).x_values)
    # (a kill inside an atomic write may leave a hidden temporary file; never a visible one)
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == ["meta.json", "test.npz", "train.npz"], f"after {kills} kills"
    assert kills >= 1
