"""Shared fixtures: the real Bibtex archive that ships beside the repository."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIBTEX_ZIP = REPO.parent / "shared" / "data" / "bibtex" / "Bibtex.zip"


@pytest.fixture(scope="session")
def bibtex_zip() -> Path:
    """Path of the Extreme Classification Repository's Bibtex zip (never downloaded by tests)."""
    if not BIBTEX_ZIP.is_file():
        pytest.fail(f"{BIBTEX_ZIP} is missing: tests use the shipped Bibtex archive")
    return BIBTEX_ZIP
