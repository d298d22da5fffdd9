"""Atomic, self-verifying training checkpoints (one ``.npz`` file, no pickle).

A checkpoint holds a method's state arrays plus a JSON metadata record (stored inside the archive
as a ``uint8`` array) that carries the harness's position (epoch, batch, iteration, training
seconds) and a sha256 over every state array. The file is written to a temporary name and renamed,
so a kill leaves either the previous checkpoint or the new one, never a mixture; a file damaged
afterwards fails the digest check on load and is reported, never silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slide_bench.errors import SuiteError
from slide_bench.runlog import atomic_open

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

_META = "__checkpoint_meta__"
FORMAT_VERSION = 1


class CheckpointError(SuiteError):
    """A checkpoint exists but cannot be trusted (truncated, corrupt or from another run)."""


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(repr(arr.shape).encode())
        h.update(arr.reshape(-1).view(np.uint8))  # the raw bytes, without a copy
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> None:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.npz`` file.
    arrays : mapping of str to ndarray
        State arrays (any shapes; object arrays are refused).
    meta : mapping
        JSON-serialisable position and identity of the run.
    """
    if _META in arrays:
        raise ValueError(f"{_META!r} is reserved")
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"state array {name!r} has dtype object; checkpoints hold no pickles")
    record = {"format": FORMAT_VERSION, "sha256": _digest(arrays), "meta": dict(meta)}
    blob = np.frombuffer(json.dumps(record, default=str).encode(), dtype=np.uint8)
    # streamed into the file (numpy writes each array in 16 MiB pieces): at Amazon-670K shape the
    # state is over a gigabyte, and an in-memory archive used to double the run's peak memory
    with atomic_open(path) as fh:
        np.savez(fh, **{_META: blob}, **{k: np.asarray(v) for k, v in arrays.items()})


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a checkpoint.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save_checkpoint`.

    Returns
    -------
    arrays : dict of str to ndarray
        The state arrays.
    meta : dict
        The metadata record given to :func:`save_checkpoint`.

    Raises
    ------
    CheckpointError
        The file is unreadable, truncated, or its digest does not match its arrays.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} is unreadable ({err})") from err
    blob = arrays.pop(_META, None)
    if blob is None:
        raise CheckpointError(f"checkpoint {path} has no metadata record")
    try:
        record = json.loads(blob.tobytes().decode())
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path} has a corrupt metadata record") from err
    if record.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {record.get('format')!r}")
    if record.get("sha256") != _digest(arrays):
        raise CheckpointError(f"checkpoint {path} fails its sha256 check (corrupt)")
    return arrays, record["meta"]
