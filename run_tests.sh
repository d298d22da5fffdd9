#!/usr/bin/env bash
# The suite's test command (the README's second command; .ci/run calls exactly this).
# Installs the package with its test and cluster extras (the SLURM executor plugin), then runs
# the linter and the whole test suite, which includes the Snakemake lint, dry runs, a full run
# of the tiny CI configuration, and the same run on a single-node SLURM cluster that the test
# itself starts and stops (workflow/cluster/slurm-local.sh: as root, installs Debian's SLURM).
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install --quiet --disable-pip-version-check -e '.[test,cluster]'
ruff check .
python -m pytest -q "$@"
