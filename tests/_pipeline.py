"""Helpers of the pipeline tests: run Snakemake on a copy of the CI config in a working
directory of its own (the repository's Snakefile, the config's local paths made absolute)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CI_CONFIG = REPO / "config" / "ci" / "config.yaml"
# The Extreme Classification Repository's Bibtex zip beside the repository (the CI config's
# `Bibtex` dataset); SLIDE_BENCH_BIBTEX_ZIP points the tests at another copy (or at nothing, to
# check that the tests needing it are skipped).
BIBTEX_ZIP = Path(os.environ.get("SLIDE_BENCH_BIBTEX_ZIP")
                  or REPO.parent / "shared" / "data" / "bibtex" / "Bibtex.zip")


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
        if Path(entry.get("zip", "")).name == BIBTEX_ZIP.name:
            entry["zip"] = str(BIBTEX_ZIP)
    if change is not None:
        change(config)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# Columns that identify a row of a results table (the grid point, the peer, the level); the other
# columns are measurements, which differ from run to run.
ROW_KEYS = ("dataset", "method", "device", "threads", "seed", "peer", "level")


def results_manifest(results: Path) -> dict:
    """What a finished pipeline run produced, without its measurements: every table of
    `results/` (columns, and rows by their key columns; curves.csv by run, as the number of
    evaluations per run follows the clock), every per-run curve's columns, every figure and the
    environment record's keys. Two runs of one config must give the same manifest."""
    import json

    import pandas as pd

    def rows(table: pd.DataFrame, per_run: bool = False) -> list[list[str]]:
        columns = [c for c in ROW_KEYS if c in table.columns and not (per_run and c == "level")]
        keys = table[columns].astype(str).drop_duplicates() if per_run else table[columns]
        return sorted(map(list, keys.astype(str).to_numpy()))

    tables = {}
    for path in sorted(results.glob("*.csv")):
        table = pd.read_csv(path)
        tables[path.name] = {"columns": list(table.columns),
                             "rows": rows(table, per_run=path.name == "curves.csv")}
    curves = {p.relative_to(results).as_posix(): list(pd.read_csv(p).columns)
              for p in sorted(results.glob("curves/*/*.csv"))}
    return {
        "tables": tables,
        "curves": curves,
        "figures": sorted(p.relative_to(results).as_posix()
                          for p in (results / "plots").rglob("*") if p.is_file()),
        "environment": sorted(json.loads((results / "environment.json").read_text())),
    }


if __name__ == "__main__":  # python tests/_pipeline.py RESULTS_DIR > manifest.json
    import json

    print(json.dumps(results_manifest(Path(sys.argv[1])), indent=1))
