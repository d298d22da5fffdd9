"""Shared fixtures: the real Bibtex archive that ships beside the repository, one local run of
the CI experiment that the pipeline tests share, and the local SLURM cluster."""

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
from _pipeline import absolute_config, run_snakemake

REPO = Path(__file__).resolve().parent.parent
BIBTEX_ZIP = REPO.parent / "shared" / "data" / "bibtex" / "Bibtex.zip"
SLURM_LOCAL = REPO / "workflow" / "cluster" / "slurm-local.sh"


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


def cannot_run(reason: str) -> None:
    """Skip where the host cannot run a SLURM cluster, but never in CI: there it must run."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the SLURM tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster():
    """This machine as a one-node SLURM cluster (workflow/cluster/slurm-local.sh start: installs
    Debian's packages if needed, needs root), up for the rest of the session; stopped at its end
    unless it was already running before."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        cannot_run("the SLURM executor plugin is not installed: pip install -e '.[cluster]'")
    script = ["bash", str(SLURM_LOCAL)]
    was_up = subprocess.run([*script, "status"], capture_output=True).returncode == 0
    start = subprocess.run([*script, "start"], capture_output=True, text=True, timeout=1200)
    if start.returncode == 3:
        cannot_run(start.stderr.strip())
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        yield start.stdout.strip()
    finally:
        if not was_up:
            stop = subprocess.run([*script, "stop"], capture_output=True, text=True, timeout=300)
            assert stop.returncode == 0, stop.stdout + stop.stderr
