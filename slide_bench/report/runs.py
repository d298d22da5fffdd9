"""Publishing one training job's result to the pipeline's stable paths.

The engine writes its curve, sidecar and checkpoint in a working folder that Snakemake does not
own (so a killed job keeps them and a rerun resumes). When the job ends, :func:`finalize_run`
copies the finished curve and sidecar to the declared outputs, or, when a baseline exited 3
because no GPU is visible, writes a *failed* record there so that the rest of the pipeline still
runs and the summary says why the run is missing.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from slide_bench.errors import GPUUnavailableError, SuiteError
from slide_bench.runlog import CURVE_COLUMNS, atomic_write_bytes, read_sidecar, write_sidecar

__all__ = ["FINISHED", "FinalizeError", "finalize_run", "last_message"]

#: Sidecar statuses of a run that ended by itself (the engine's contract).
FINISHED = ("done", "diverged", "timeout")


class FinalizeError(SuiteError):
    """A training job exited 0 but left no finished curve, or a job exited with an error.

    Its exit code is the training command's (2 when that one exited 0 without a result).
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def last_message(log: Path) -> str:
    """The last non-empty line of a log (the CLIs print their one-line error last)."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    return next((ln for ln in reversed(lines) if ln), "")


def finalize_run(exit_code: int, log: Path, work: Path, curve: Path, sidecar: Path) -> None:
    """Publish a finished run, or record a run that could not start for lack of a GPU.

    Parameters
    ----------
    exit_code : int
        Exit status of the training command.
    log : Path
        The job's log (its last line is the error message of a failed command).
    work : Path
        The curve the engine wrote; its sidecar is ``work.with_suffix(".json")``.
    curve, sidecar : Path
        The declared outputs.

    Raises
    ------
    FinalizeError
        When the command failed with any status but 3 (exit code 2 for bad input, 1 for a bug),
        or exited 0 without a finished sidecar; the job then fails and Snakemake keeps the log.
    """
    if exit_code == GPUUnavailableError.exit_code:
        reason = last_message(log) or "GPU requested but none visible"
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(CURVE_COLUMNS)
        atomic_write_bytes(curve, header.getvalue().encode())
        write_sidecar(
            sidecar,
            {"status": "failed", "stop_reason": f"no GPU: {reason}", "iterations": 0,
             "train_seconds": 0.0, "exit_code": exit_code},
        )
        return
    if exit_code != 0:
        raise FinalizeError(
            f"training exited with status {exit_code}: {last_message(log) or 'see ' + str(log)}",
            exit_code,
        )
    work_sidecar = work.with_suffix(".json")
    record = read_sidecar(work_sidecar)
    if record is None or record.get("status") not in FINISHED or not work.exists():
        raise FinalizeError(f"training exited 0 but {work_sidecar} does not record a finished run")
    shutil.copyfile(work, curve)
    shutil.copyfile(work_sidecar, sidecar)
