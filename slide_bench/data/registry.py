"""Registry of the real datasets: where to get them, what the archive holds, what to expect.

Sources: docs/slide-facts (Extreme Classification Repository page, its Google Drive files).
Where a Drive id, a resource key or a checksum is not known to us the field is ``None`` and
the download step says so; the archive can then be placed by hand at
``<root>/raw/<key>/<archive_name>`` (or passed with ``--archive``) and is verified the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from slide_bench.errors import ConfigError

REPO_SPLIT = "repo_split"  # <Name>/<Name>_data.txt + <name>_trSplit.txt / <name>_tstSplit.txt
TRAIN_TEST = "train_test"  # train.txt + test.txt (any folder, any prefix, e.g. eurlex_train.txt)


@dataclass(frozen=True)
class DriveFile:
    """One Google Drive copy of an archive."""

    file_id: str
    resource_key: str | None = None  # needed by pre-2021 links ("0B..." ids)


@dataclass(frozen=True)
class DatasetEntry:
    """What the suite knows about one dataset.

    ``n_train``/``n_test`` are the expected point counts of a split (for repo-split archives:
    of every split column), ``n_features``/``n_labels`` the header's D and L.
    """

    key: str  # folder name under data/raw and data/prepared; the CLI name
    title: str  # the repository's name
    archive_name: str  # file name the archive is stored under
    layout: str | None  # REPO_SPLIT or TRAIN_TEST, checked on verification; None: not known to us
    drive: tuple[DriveFile, ...]  # tried in order; empty when no link is known to us
    n_train: int
    n_test: int
    n_features: int
    n_labels: int
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None  # bytes
    note: str = ""

    @property
    def has_checksum(self) -> bool:
        """True when the archive can be verified byte for byte."""
        return self.md5 is not None or self.sha256 is not None


_ENTRIES = (
    DatasetEntry(
        key="bibtex",
        title="Bibtex",
        archive_name="Bibtex.zip",
        layout=REPO_SPLIT,
        drive=(DriveFile("0B3lPMIHmG6vGcy1xM2pJZ09MMGM", "0-UzogKsb6v7pz2Vf_1uooFA"),),
        n_train=4_880,
        n_test=2_515,
        n_features=1_836,
        n_labels=159,
        md5="78db23bd26486d4188502abf6a39b856",
        sha256="403d0e82fca1cbb3259cc00c553bebc807ed053967b2d9e8582a511bc3ae5757",
        size=1_149_131,
    ),
    DatasetEntry(
        key="mediamill",
        title="Mediamill",
        archive_name="Mediamill.zip",
        layout=REPO_SPLIT,
        drive=(DriveFile("0B3lPMIHmG6vGY3B4TXRmZnZBTkk", "0-Hv7nA6NTsIJshWk2gJwTYw"),),
        n_train=30_993,
        n_test=12_914,
        n_features=120,
        n_labels=101,
        md5="11cfdb9269ae5a301bb0c6f333cc6999",
    ),
    DatasetEntry(
        key="delicious",
        title="Delicious",
        archive_name="Delicious.zip",
        layout=REPO_SPLIT,
        drive=(),
        n_train=12_920,
        n_test=3_185,
        n_features=500,
        n_labels=983,
        note="Drive id unknown to us: place Delicious.zip by hand.",
    ),
    DatasetEntry(
        key="eurlex-4k",
        title="EURLex-4K",
        archive_name="Eurlex.zip",
        layout=None,
        drive=(
            DriveFile("0B3lPMIHmG6vGU0VTR1pCejFpWjg", "0-SurjZ4z_5Tr38jENzf2Iwg"),
            DriveFile("1xWW1UykQBTD2IorVn7V8XubJatQDScol"),
        ),
        n_train=15_539,
        n_test=3_809,
        n_features=5_000,
        n_labels=3_993,
        md5="ec8feb2a9a0bd0f32d8f4c2b00725524",
        note="layout not known to us (detected from the members); md5 known for the original "
        "upload only: a re-upload that differs fails verification (place the original by hand).",
    ),
    DatasetEntry(
        key="wiki10-31k",
        title="Wiki10-31K",
        archive_name="Wiki10-31K.bow.zip",
        layout=TRAIN_TEST,
        drive=(DriveFile("1-sE0GoT-eE18S9e-B8nQr8j7LdYexGHX"),),
        n_train=14_146,
        n_test=6_616,
        n_features=101_938,
        n_labels=30_938,
    ),
    DatasetEntry(
        key="delicious-200k",
        title="Delicious-200K",
        archive_name="Delicious200K.bow.zip",
        layout=TRAIN_TEST,
        drive=(
            DriveFile("0B3lPMIHmG6vGR3lBWWYyVlhDLWM", "0-ghyb4ko9PlDHlEVBb-_9IA"),
            DriveFile("18Tb595TuGyFW--nEYGfduwS5WvSbX-sX"),
        ),
        n_train=196_606,
        n_test=100_095,
        n_features=782_585,
        n_labels=205_443,
    ),
    DatasetEntry(
        key="amazon-670k",
        title="Amazon-670K",
        archive_name="Amazon670K.bow.zip",
        layout=TRAIN_TEST,
        drive=(
            DriveFile("1TLaXCNB_IDtLhk4ycOnyud0PswWAW6hR"),
            DriveFile("1PV-wbKVv6Ng1K1XM1USqNxFhaQo2qfk6"),
        ),
        n_train=490_449,
        n_test=153_025,
        n_features=135_909,
        n_labels=670_091,
        note="the zip holds Amazon670K.bow/{train,test}.txt",
    ),
    DatasetEntry(
        key="amazoncat-13k",
        title="AmazonCat-13K",
        archive_name="AmazonCat-13K.bow.zip",
        layout=TRAIN_TEST,
        drive=(),
        n_train=1_186_239,
        n_test=306_782,
        n_features=203_882,
        n_labels=13_330,
        note="Drive id unknown to us: place the archive by hand.",
    ),
)

DATASETS: dict[str, DatasetEntry] = {e.key: e for e in _ENTRIES}


def _norm(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def get_entry(name: str) -> DatasetEntry:
    """Look a dataset up by key or title, ignoring case and punctuation ("Amazon-670K").

    Raises
    ------
    ConfigError
        Unknown name; the message lists the known ones.
    """
    for entry in _ENTRIES:
        if _norm(name) in (_norm(entry.key), _norm(entry.title)):
            return entry
    raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
