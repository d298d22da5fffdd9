"""Where TensorFlow really ran a training step's ops: captured placement and its check.

A ``tf.function`` is placed by TensorFlow's placer and rewritten by Grappler when it is first
instantiated; ops without a kernel for the requested device silently fall back to the CPU (soft
placement). Requesting ``/GPU:0`` therefore proves nothing: :func:`capture` records the
partitioned graphs TensorFlow actually executed (the run metadata, with every node's assigned
device, the same information ``tf.debugging.set_log_device_placement`` prints), and
:func:`check` asserts that the step's heavy ops -- the matmuls, the softmax's exponentials and
logarithms, and the optimiser's updates -- ran on the requested device. Integer bookkeeping
(shapes, step counters) may legitimately live on the host and is not judged.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from tensorflow.core.framework import types_pb2
from tensorflow.python.eager import context

__all__ = ["CATEGORIES", "PlacedOp", "PlacementReport", "capture", "check", "classify"]

#: Float element types: the work the device is meant to do.
_FLOAT_TYPES = {types_pb2.DT_FLOAT, types_pb2.DT_HALF, types_pb2.DT_BFLOAT16, types_pb2.DT_DOUBLE}

#: Checked categories, in report order; each must be present in the step and on the device.
CATEGORIES = ("matmul", "softmax", "optimiser")


@dataclass(frozen=True)
class PlacedOp:
    """One executed node: its name, op type (after Grappler's rewrites), dtype and device.

    Attributes
    ----------
    name, op : str
        Node name and op type (e.g. ``MatMul``, or ``_MklMatMul`` on a oneDNN CPU build).
    dtype : int or None
        The node's ``T`` or ``dtype`` attribute (a ``DataType`` enum value), if it has one.
    device : str
        Short assigned device, e.g. ``GPU:0`` or ``CPU:0``.
    """

    name: str
    op: str
    dtype: int | None
    device: str


@dataclass
class PlacementReport:
    """Placement of the checked categories of ops.

    Attributes
    ----------
    device : str
        The device they had to run on (``GPU:0``, ``CPU:0``).
    counts : dict of str to Counter
        Per category, executed nodes by device.
    misplaced : list of PlacedOp
        Nodes of a checked category that ran elsewhere.
    missing : list of str
        Checked categories with no executed node at all (the capture saw no step).
    """

    device: str
    counts: dict[str, Counter] = field(default_factory=dict)
    misplaced: list[PlacedOp] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every checked category ran, and only on :attr:`device`."""
        return not self.misplaced and not self.missing

    def lines(self) -> list[str]:
        """Human-readable summary, one line per category."""
        out = []
        for category in CATEGORIES:
            where = self.counts.get(category, Counter())
            text = ", ".join(f"{n} on {dev}" for dev, n in sorted(where.items())) or "none ran"
            out.append(f"{category:10s} {text}")
        for node in self.misplaced:
            out.append(f"MISPLACED  {node.op} ({node.name}) ran on {node.device}")
        return out


def _short_device(device: str) -> str:
    """``/job:localhost/replica:0/task:0/device:GPU:0`` -> ``GPU:0``."""
    return device.rsplit("device:", 1)[-1] if device else "?"


def _dtype(node) -> int | None:
    for key in ("T", "dtype"):
        if key in node.attr:
            return int(node.attr[key].type)
    return None


def classify(op: PlacedOp) -> str | None:
    """The checked category of an executed node, or None if it is not judged.

    Grappler renames ops by backend (``_MklMatMul``, ``_FusedMatMul``, ``_MklNativeFusedMatMul``
    on CPU; ``MatMul``, ``_FusedMatMul`` on GPU), so matmuls are recognised by substring.
    Only float nodes count: integer ops may be placed on the host on purpose.
    """
    if op.dtype is not None and op.dtype not in _FLOAT_TYPES:
        return None
    if "MatMul" in op.op:
        return "matmul"
    base = op.op.removeprefix("_Mkl")
    if base in ("Softmax", "LogSoftmax", "Exp", "Log"):
        return "softmax"
    if op.op.startswith(("ResourceApply", "ResourceSparseApply", "ResourceScatter")):
        return "optimiser"
    return None


@contextlib.contextmanager
def capture() -> Iterator[list[PlacedOp]]:
    """Record the placement of every ``tf.function`` instantiated inside the block.

    The list yielded is filled when the block ends. TensorFlow records a function's partitioned
    graphs when it is *instantiated*, so create or first call the functions (e.g. the model's
    ``warmup``) inside the block.

    Yields
    ------
    list of PlacedOp
    """
    ctx = context.context()
    ctx.enable_run_metadata()
    nodes: list[PlacedOp] = []
    try:
        yield nodes
        metadata = ctx.export_run_metadata()
    finally:
        ctx.disable_run_metadata()
    graphs = [g for f in metadata.function_graphs for g in f.partition_graphs]
    graphs += list(metadata.partition_graphs)
    seen = set()
    for graph in graphs:
        for node in graph.node:
            placed = PlacedOp(node.name, node.op, _dtype(node), _short_device(node.device))
            if placed not in seen:  # a function instantiated twice is one placement
                seen.add(placed)
                nodes.append(placed)


def check(nodes: list[PlacedOp], device: str) -> PlacementReport:
    """Judge captured placement against the device the step had to run on.

    Parameters
    ----------
    nodes : list of PlacedOp
        From :func:`capture`.
    device : str
        ``/GPU:0``, ``GPU:0``, ``/CPU:0`` ...

    Returns
    -------
    PlacementReport
    """
    want = device.strip("/").upper()
    report = PlacementReport(device=want)
    for node in nodes:
        category = classify(node)
        if category is None:
            continue
        report.counts.setdefault(category, Counter())[node.device] += 1
        if node.device.upper() != want:
            report.misplaced.append(node)
    report.missing = [c for c in CATEGORIES if c not in report.counts]
    return report
