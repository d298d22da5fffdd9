"""The run log shared by every method: curve CSV rows and a JSON provenance sidecar.

One schema for SLIDE and the TensorFlow baselines, so the pipeline aggregates and plots them with
the same code. The CSV is rewritten atomically on every append (curves hold hundreds of rows, so
this costs nothing and a kill never leaves a half-written file).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

from slide_bench.atomic import atomic_target

__all__ = [
    "CURVE_COLUMNS",
    "CurveLog",
    "atomic_open",
    "atomic_write_bytes",
    "config_hash",
    "gpu_inventory",
    "installed_versions",
    "parse_nvidia_smi",
    "provenance",
    "read_sidecar",
    "write_sidecar",
]

#: Columns every curve starts with, in this order; methods may append extra columns.
CURVE_COLUMNS: tuple[str, ...] = (
    "method",
    "dataset",
    "device",
    "threads",
    "seed",
    "epoch",
    "iteration",
    "train_seconds",
    "p_at_1",
    "p_at_3",
    "p_at_5",
    "loss",
    "eval_set",
    "eval_points",
)

_PACKAGES = ("numpy", "numba", "llvmlite", "tensorflow", "tensorflow-cpu", "pandas", "snakemake")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a binary file that replaces ``path`` atomically when the block ends without error.

    The content goes to a temporary file in the same folder, is flushed and fsynced, then renamed
    onto ``path``; on any exception ``path`` keeps its previous content. Writers can stream into
    the handle, so nothing needs to hold the whole content in memory.

    Parameters
    ----------
    path : path-like
        Destination; its folder must exist and be writable.

    Yields
    ------
    BinaryIO
        The open temporary file.
    """
    path = Path(path)
    try:
        with atomic_target(path) as tmp, tmp.open("wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        if err.filename is None:
            # a failed write (disk full, file too large) names no file: name the destination
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def atomic_write_bytes(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename.

    Parameters
    ----------
    path : path-like
        Destination; its folder must exist and be writable.
    payload : bytes
        The whole new content.
    """
    with atomic_open(path) as fh:
        fh.write(payload)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


class CurveLog:
    """An append-only curve CSV that can be reopened and cut back to a checkpoint.

    Parameters
    ----------
    path : path-like
        The curve CSV.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []

    @property
    def columns(self) -> list[str]:
        """Column order: the schema's columns, then extras in order of first appearance."""
        cols = list(CURVE_COLUMNS)
        for row in self.rows:
            cols.extend(c for c in row if c not in cols)
        return cols

    def load(self, up_to_iteration: int | None = None) -> None:
        """Reload the rows of an earlier run.

        Parameters
        ----------
        up_to_iteration : int, optional
            For a resume: keep only training-time rows with ``iteration <= up_to_iteration``.
            Rows written after the checkpoint being resumed from are dropped (the iterations
            they describe are trained again; keeping them would duplicate the curve), and so is
            the final full-test row. ``None`` keeps every row.
        """
        self.rows = []
        if not self.path.exists():
            return
        with self.path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if up_to_iteration is None or (
                    int(row["iteration"]) <= up_to_iteration and row["eval_set"] == "subset"
                ):
                    self.rows.append(row)

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one row (it must carry every schema column) and rewrite the file atomically."""
        missing = [c for c in CURVE_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"curve row lacks columns {missing}")
        self.rows.append(dict(row))
        self.flush()

    def flush(self) -> None:
        """Write all rows to ``path`` atomically."""
        buf = io.StringIO()
        cols = self.columns
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for row in self.rows:
            writer.writerow([_fmt(row.get(c)) for c in cols])
        atomic_write_bytes(self.path, buf.getvalue().encode())


def config_hash(config: Mapping[str, Any]) -> str:
    """Short sha256 of a config's canonical JSON form (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_sha() -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


#: ``nvidia-smi --query-gpu`` fields of :func:`gpu_inventory`, in its column order.
_SMI_FIELDS = ("pci.bus_id", "name", "driver_version", "memory.total", "uuid")
_SMI_KEYS = ("pci_bus_id", "name", "driver_version", "memory_total_mib", "uuid")


def parse_nvidia_smi(text: str) -> list[dict[str, str]]:
    """Rows of ``nvidia-smi --query-gpu=pci.bus_id,name,driver_version,memory.total,uuid
    --format=csv,noheader,nounits``.

    Parameters
    ----------
    text : str
        Its standard output.

    Returns
    -------
    list of dict
        One dict per GPU with keys ``pci_bus_id``, ``name``, ``driver_version``,
        ``memory_total_mib``, ``uuid``.
    """
    rows = []
    for line in text.strip().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == len(_SMI_KEYS):
            rows.append(dict(zip(_SMI_KEYS, fields, strict=True)))
    return rows


def gpu_inventory() -> list[dict[str, str]]:
    """The NVIDIA GPUs of this machine as ``nvidia-smi`` lists them (no TensorFlow involved).

    Returns
    -------
    list of dict
        :func:`parse_nvidia_smi` rows; empty without ``nvidia-smi`` or when it fails (no
        driver). SLURM and container runtimes usually show a job only its own GPUs.
    """
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(_SMI_FIELDS)}",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out)


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """Version of each installed distribution among ``names`` (absent ones are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(config: Mapping[str, Any], threads: int, device: str) -> dict[str, Any]:
    """Where and with what a run was made.

    Parameters
    ----------
    config : mapping
        The run's full configuration (hashed into ``config_hash``).
    threads : int
        Threads the method was told to use.
    device : str
        ``"cpu"`` or ``"gpu"``: the device actually used.

    Returns
    -------
    dict
        Versions, CPU model, core count, thread settings, the machine's NVIDIA GPUs
        (:func:`gpu_inventory`: model, driver, memory; a TensorFlow GPU run adds which of them
        it used), git sha and config hash.
    """
    versions = installed_versions(_PACKAGES)
    thread_env = {
        k: os.environ[k]
        for k in (
            "OMP_NUM_THREADS",
            "NUMBA_NUM_THREADS",
            "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS",
        )
        if k in os.environ
    }
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "device": device,
        "thread_env": thread_env,
        "gpus": gpu_inventory(),
        "versions": versions,
        "git_sha": _git_sha(),
        "config_hash": config_hash(config),
    }


def write_sidecar(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """Write the JSON sidecar of a curve atomically (``payload`` must be JSON-serialisable)."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=str) + "\n").encode())


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Read a sidecar; ``None`` if it does not exist or is not valid JSON (e.g. cut by a kill)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
