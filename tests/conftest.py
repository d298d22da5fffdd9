"""Shared fixtures and the suite's two test rules.

Fixtures: the real Bibtex archive that ships beside the repository, one local run of the CI
experiment that the pipeline tests share, and the local SLURM cluster.

Rules:

* A test that needs the Bibtex archive (it asks for the ``bibtex_zip`` fixture, directly or
  through another fixture, or carries ``@pytest.mark.bibtex``) is skipped with the reason when
  the archive is absent; in CI (``CI`` set) it runs and fails instead, since CI has the archive.
* A test that spawns a process is marked ``@pytest.mark.slow`` (the fast loop,
  ``python -m pytest -m "not slow"``, deselects it); an unmarked test that starts one through
  :mod:`subprocess` or :func:`os.system` fails with that advice. Machine probes the suite's
  code makes in-process (``git`` for the commit, ``nvidia-smi``, the library lookup's
  ``ldconfig``/``gcc``) are allowed.
"""

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
from _pipeline import BIBTEX_ZIP, absolute_config, run_snakemake

REPO = Path(__file__).resolve().parent.parent
SLURM_LOCAL = REPO / "workflow" / "cluster" / "slurm-local.sh"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests that need the Bibtex archive when it is absent (never in CI)."""
    if BIBTEX_ZIP.is_file() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason=f"needs the Bibtex archive, absent at {BIBTEX_ZIP} "
                                   "(place Bibtex.zip there or set SLIDE_BENCH_BIBTEX_ZIP)")
    for item in items:
        if "bibtex_zip" in getattr(item, "fixturenames", ()) or item.get_closest_marker("bibtex"):
            item.add_marker(skip)


# Machine probes the suite's own code makes while a test runs in-process (the commit for the
# provenance, GPUs, and the tools ctypes.util.find_library asks for CUDA libraries): milliseconds
# each, so they do not make a test slow.
PROBES = frozenset({"git", "nvidia-smi", "uname", "lscpu", "ldconfig", "gcc", "cc", "ld",
                    "objdump"})


@pytest.fixture(autouse=True)
def _unmarked_tests_spawn_no_process(request: pytest.FixtureRequest,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail an unmarked test that starts a process (other than a machine probe): it belongs to
    the slow tests."""
    if request.node.get_closest_marker("slow"):
        return
    advice = f"{request.node.nodeid} starts a process: mark it @pytest.mark.slow"
    popen = subprocess.Popen

    class Guarded(popen):
        def __init__(self, args, *rest, **kwargs):
            program = args if isinstance(args, str | bytes | os.PathLike) else args[0]
            if kwargs.get("shell") or Path(os.fsdecode(program)).name not in PROBES:
                raise AssertionError(f"{advice} ({program})")
            super().__init__(args, *rest, **kwargs)

    def refused(*args, **kwargs):
        raise AssertionError(advice)

    monkeypatch.setattr(subprocess, "Popen", Guarded)
    monkeypatch.setattr(os, "system", refused)
    monkeypatch.setattr(os, "posix_spawn", refused)


@pytest.fixture(scope="session")
def bibtex_zip() -> Path:
    """Path of the Extreme Classification Repository's Bibtex zip (never downloaded by tests);
    tests asking for it are skipped when it is absent (see the module docstring)."""
    if not BIBTEX_ZIP.is_file():
        pytest.fail(f"{BIBTEX_ZIP} is missing: CI must run the tests that use the Bibtex archive")
    return BIBTEX_ZIP


@pytest.fixture(scope="session")
def ci_local_run(tmp_path_factory, bibtex_zip) -> tuple[Path, Path]:
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
