"""One training job of the pipeline (rules train_cpu and train_gpu): check the job's cores, run
the engine's or baseline's command line with its output in the job's log, publish the result.

    python workflow/scripts/train.py --threads T --cores C --log LOG --work WORK \
        --curve CURVE --sidecar SIDECAR -- python -m slide_engine train ... --out WORK

The command writes its curve, sidecar and checkpoint at WORK, outside the rule's declared
outputs (Snakemake deletes those of a killed job; a rerun must find the checkpoint to resume
from). :func:`slide_bench.report.runs.finalize_run` then copies the finished curve and sidecar
to CURVE and SIDECAR, or records a failed run when a baseline exits 3 (no GPU visible).

Exit status: 0 when published; 2 when the job got fewer cores than its thread count (a timed run
must get every core it trains with); otherwise the training command's status (2 when it exited
0 without a finished run). The reason is the log's last line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from slide_bench.errors import SuiteError
from slide_bench.report.runs import finalize_run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The job's paths and thread counts, and the training command after ``--``."""
    parser = argparse.ArgumentParser(prog="workflow/scripts/train.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, required=True, help="the run's thread count")
    parser.add_argument("--cores", type=int, required=True, help="cores Snakemake gave the job")
    parser.add_argument("--log", type=Path, required=True, help="the job's log")
    parser.add_argument("--work", type=Path, required=True, help="curve CSV the command writes")
    parser.add_argument("--curve", type=Path, required=True, help="declared curve output")
    parser.add_argument("--sidecar", type=Path, required=True, help="declared sidecar output")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- and the training command")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the training command after --")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run one training job; returns its exit status."""
    args = parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    if args.cores != args.threads:
        # Snakemake lowers a job's threads to --cores; a timed run must get all it asks for.
        args.log.write_text(
            f"error: this {args.threads}-thread run would get {args.cores} core(s); "
            f"give snakemake --cores >= {args.threads}\n"
        )
        return 2
    args.work.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("w") as log:
        status = subprocess.run(args.command, stdout=log, stderr=subprocess.STDOUT).returncode
    try:
        finalize_run(status, args.log, args.work, args.curve, args.sidecar)
    except SuiteError as err:
        with args.log.open("a") as log:
            print(f"error: {err}", file=log)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
