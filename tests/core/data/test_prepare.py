"""Bibtex through the download code path (never the network), verification, safe extraction."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import shutil
import stat
import zipfile
from pathlib import Path

import gdown
import numpy as np
import pytest

from slide_bench.data import load_npz, prepare, read_repo_zip, shuffle, write_xc_text
from slide_bench.data.archive import detect_layout, safe_extract
from slide_bench.data.download import archive_path, fetch_archive, verify_archive
from slide_bench.data.registry import TRAIN_TEST, DriveFile, get_entry
from slide_bench.data.synthetic import generate
from slide_bench.errors import ChecksumError, DownloadError

BIBTEX = get_entry("Bibtex")
# the module, not the function of the same name that slide_bench.data exports
prepare_module = importlib.import_module("slide_bench.data.prepare")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network must not be used")

    monkeypatch.setattr(gdown, "download", refuse)


def fake_gdown(monkeypatch: pytest.MonkeyPatch, sources: dict[str, bytes]) -> list[str]:
    """Make gdown.download write ``sources[id]`` (the id is read from id= or the URL)."""
    calls = []

    def download(url: str | None = None, output: str | None = None, id: str | None = None, **kw):
        file_id = id or url.split("id=")[1].split("&")[0]
        calls.append(file_id)
        Path(output).write_bytes(sources[file_id])
        return output

    monkeypatch.setattr(gdown, "download", download)
    return calls


def test_bibtex_prepare_from_placed_archive(
    tmp_path: Path, bibtex_zip: Path, no_network: None
) -> None:
    root = tmp_path / "data"
    placed = archive_path(BIBTEX, root)
    placed.parent.mkdir(parents=True)
    shutil.copy(bibtex_zip, placed)
    out = prepare("Bibtex", root=root, split=1, seed=0)
    assert out == root / "prepared" / "bibtex"
    train, test = load_npz(out / "train.npz"), load_npz(out / "test.npz")
    assert (train.n_points, test.n_points) == (4_880, 2_515)
    assert (train.n_features, train.n_labels) == (1_836, 159)
    labels_per_point = (train.y_indices.size + test.y_indices.size) / 7_395
    assert round(labels_per_point, 2) == 2.40
    # shuffled with the seed, from split column 1
    raw_train, raw_test = read_repo_zip(bibtex_zip, 1)
    for got, raw in ((train, raw_train), (test, raw_test)):
        want = shuffle(raw, 0)
        np.testing.assert_array_equal(got.y_indices, want.y_indices)
        np.testing.assert_array_equal(got.x_values, want.x_values)
    # idempotent: valid outputs are kept as they are
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    prepare("bibtex", root=root, split=1, seed=0)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    # another seed re-prepares
    prepare("bibtex", root=root, split=1, seed=1)
    np.testing.assert_array_equal(
        load_npz(out / "train.npz").y_indices, shuffle(raw_train, 1).y_indices
    )


def test_truncated_placed_archive_is_refused(
    tmp_path: Path, bibtex_zip: Path, no_network: None
) -> None:
    root = tmp_path / "data"
    placed = archive_path(BIBTEX, root)
    placed.parent.mkdir(parents=True)
    placed.write_bytes(bibtex_zip.read_bytes()[:500_000])
    with pytest.raises(ChecksumError, match=r"500,000 bytes, expected 1,149,131.*was not used"):
        prepare("bibtex", root=root)
    assert placed.exists()  # a user's file is never deleted
    assert not (root / "prepared" / "bibtex" / "train.npz").exists()


def test_corrupted_archive_fails_checksum(tmp_path: Path, bibtex_zip: Path) -> None:
    raw = bytearray(bibtex_zip.read_bytes())
    raw[600_000] ^= 0xFF
    bad = tmp_path / "Bibtex.zip"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"md5 .* expected md5 78db23bd"):
        verify_archive(bad, BIBTEX)


def test_download_falls_back_and_verifies(
    tmp_path: Path, bibtex_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = bibtex_zip.read_bytes()
    entry = dataclasses.replace(
        BIBTEX, drive=(DriveFile("html-page", "key-1"), DriveFile("truncated"), DriveFile("good"))
    )
    calls = fake_gdown(
        monkeypatch, {"html-page": b"<html>quota</html>", "truncated": good[:-100], "good": good}
    )
    path, layout = fetch_archive(entry, tmp_path)
    assert calls == ["html-page", "truncated", "good"]
    assert path == archive_path(entry, tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BIBTEX.sha256
    assert [Path(m).name for m in layout.members] == [
        "Bibtex_data.txt",
        "bibtex_trSplit.txt",
        "bibtex_tstSplit.txt",
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == ["Bibtex.zip"]  # no partial files


def test_failed_downloads_leave_nothing_and_say_what_to_do(
    tmp_path: Path, bibtex_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gdown(monkeypatch, {BIBTEX.drive[0].file_id: bibtex_zip.read_bytes()[:-1]})
    target = archive_path(BIBTEX, tmp_path)
    with pytest.raises(DownloadError, match=f"place Bibtex.zip at {target}"):
        fetch_archive(BIBTEX, tmp_path)
    assert list(target.parent.iterdir()) == []


def test_unknown_link_says_where_to_place_archive(tmp_path: Path, no_network: None) -> None:
    with pytest.raises(DownloadError, match=r"no download link .* place Delicious.zip at"):
        prepare("delicious", root=tmp_path)


def _zip_with(path: Path, name: str, mode: int = 0o100644, data: bytes = b"x") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/train.txt", "1 1 1\n0 0:1\n")
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("member", "mode", "reason"),
    [
        ("../evil.txt", 0o100644, r"escapes the target folder"),
        ("ok/../../evil.txt", 0o100644, r"escapes the target folder"),
        ("/etc/evil.txt", 0o100644, r"absolute"),
        ("ok/link", stat.S_IFLNK | 0o777, r"symbolic link"),
    ],
)
def test_unsafe_archives_are_rejected(tmp_path: Path, member: str, mode: int, reason: str) -> None:
    archive = _zip_with(tmp_path / "evil.zip", member, mode, b"../../outside")
    dest = tmp_path / "sub" / "extracted"
    with pytest.raises(DownloadError, match=reason):
        safe_extract(archive, dest)
    assert not dest.exists()
    assert not (tmp_path / "evil.txt").exists()
    assert list((tmp_path / "sub").iterdir()) == []  # the temporary folder is gone too


def test_extraction_size_limit_and_success(tmp_path: Path) -> None:
    archive = _zip_with(tmp_path / "big.zip", "ok/test.txt", data=b"0" * 10_000)
    with pytest.raises(DownloadError, match="over the limit"):
        safe_extract(archive, tmp_path / "out", max_bytes=5_000)
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "ok" / "test.txt").read_bytes() == b"0" * 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.zip", "out"]


@pytest.mark.slow
def test_train_test_archive_is_extracted_read_and_shuffled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    train, test = generate("tiny", seed=5)
    for part, data in (("train", train), ("test", test)):
        write_xc_text(data, tmp_path / f"{part}.txt")
    archive = tmp_path / "Tiny.bow.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(tmp_path / "train.txt", "Tiny.bow/train.txt")
        zf.write(tmp_path / "test.txt", "Tiny.bow/test.txt")
    entry = dataclasses.replace(
        get_entry("amazon-670k"),
        key="tiny-bow",
        archive_name=archive.name,
        layout=TRAIN_TEST,
        drive=(),
        n_train=train.n_points,
        n_test=test.n_points,
        n_features=train.n_features,
        n_labels=train.n_labels,
    )
    monkeypatch.setattr(prepare_module, "get_entry", lambda name: entry)
    root = tmp_path / "data"
    out = prepare("tiny-bow", root=root, archive=archive, seed=3)
    got = load_npz(out / "test.npz")
    np.testing.assert_array_equal(got.x_indices, shuffle(test, 3).x_indices)
    np.testing.assert_array_equal(got.x_values, shuffle(test, 3).x_values)
    assert not (root / "raw" / "tiny-bow" / "extracted").exists()
    with pytest.raises(Exception, match="one fixed train/test split"):
        prepare("tiny-bow", root=root, archive=archive, split=2)


def test_layout_detection_prefers_exact_names_and_skips_resource_forks() -> None:
    names = [
        "__MACOSX/Amazon670K.bow/._train.txt",
        "Amazon670K.bow/filter_labels_train.txt",
        "Amazon670K.bow/train.txt",
        "Amazon670K.bow/test.txt",
    ]
    layout = detect_layout(names, Path("Amazon670K.bow.zip"))
    assert layout.kind == TRAIN_TEST
    assert layout.members == ("Amazon670K.bow/train.txt", "Amazon670K.bow/test.txt")
    prefixed = detect_layout(["E/eurlex_train.txt", "E/eurlex_test.txt"], Path("Eurlex.zip"))
    assert prefixed.members == ("E/eurlex_train.txt", "E/eurlex_test.txt")
