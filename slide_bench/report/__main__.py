"""``python -m slide_bench.report finalize-run ...``: publish one training job's result.

Used by the pipeline's training rules after the engine or baseline command returns; see
:func:`slide_bench.report.runs.finalize_run`. Imports only the run log (no Numba, no data
layer), so it adds well under a second to a job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from slide_bench.errors import SuiteError
from slide_bench.report.runs import finalize_run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the sub-command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m slide_bench.report", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fin = sub.add_parser("finalize-run", help="publish a finished run or record a GPU-less one")
    fin.add_argument("--exit-code", type=int, required=True, help="the training command's status")
    fin.add_argument("--log", type=Path, required=True, help="the training job's log")
    fin.add_argument("--work", type=Path, required=True, help="curve CSV the engine wrote")
    fin.add_argument("--curve", type=Path, required=True, help="declared curve output")
    fin.add_argument("--sidecar", type=Path, required=True, help="declared sidecar output")
    args = parser.parse_args(argv)
    try:
        finalize_run(args.exit_code, args.log, args.work, args.curve, args.sidecar)
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
