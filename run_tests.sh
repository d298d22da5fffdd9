#!/usr/bin/env bash
# The suite's test command (the README's second command; .ci/run calls exactly this).
# Installs the package with its test extras, then runs the linter and the whole test suite,
# which includes the Snakemake lint, dry runs and a full run of the tiny CI configuration.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install --quiet --disable-pip-version-check -e '.[test]'
ruff check .
python -m pytest -q "$@"
