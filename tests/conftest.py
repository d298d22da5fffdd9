"""Shared fixtures: the real Bibtex archive that ships beside the repository, and one local
run of the CI experiment that the pipeline tests share."""

from pathlib import Path

import pytest
from _pipeline import absolute_config, run_snakemake

REPO = Path(__file__).resolve().parent.parent
BIBTEX_ZIP = REPO.parent / "shared" / "data" / "bibtex" / "Bibtex.zip"


@pytest.fixture(scope="session")
def bibtex_zip() -> Path:
    """Path of the Extreme Classification Repository's Bibtex zip (never downloaded by tests)."""
    if not BIBTEX_ZIP.is_file():
        pytest.fail(f"{BIBTEX_ZIP} is missing: tests use the shipped Bibtex archive")
    return BIBTEX_ZIP


@pytest.fixture(scope="session")
def ci_local_run(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny CI config run to the end on this machine (`snakemake --cores 2`, the default
    profile): (working directory, config file). Shared by the end-to-end test and the SLURM
    test, which compares its cluster run with this one."""
    work = tmp_path_factory.mktemp("ci-run")
    configfile = absolute_config(work)
    run_snakemake(work, configfile, "--cores", "2")
    return work, configfile
