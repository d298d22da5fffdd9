"""Helpers of the pipeline tests: run Snakemake on a copy of the CI config in a working
directory of its own (the repository's Snakefile, the config's local paths made absolute)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CI_CONFIG = REPO / "config" / "ci" / "config.yaml"


def snakemake_argv(workdir: Path, configfile: Path, *args: str) -> list[str]:
    """The command line of one Snakemake run of the repository's workflow in `workdir`."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(configfile), *args]


def run_snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Snakemake to the end; fail the test with the tail of its output if it fails."""
    proc = subprocess.run(snakemake_argv(workdir, configfile, *args), cwd=REPO,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc


def absolute_config(tmp: Path, change: Callable[[dict], None] | None = None) -> Path:
    """The CI config with its local paths made absolute (the run's working dir is elsewhere),
    optionally changed by `change(config)`, written to `tmp/config.yaml`."""
    config = yaml.safe_load(CI_CONFIG.read_text())
    for entry in config["datasets"].values():
        for key in ("zip", "train", "test"):
            if key in entry:
                entry[key] = str((REPO / entry[key]).resolve())
    if change is not None:
        change(config)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
