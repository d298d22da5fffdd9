"""Trainable state of one layer: weights, gradient accumulators, Adam moments, per-row counters.

Everything is a flat float32/int64 array (no Python object per neuron). ``w`` is input-major
``[D, H]`` for the first layer (a sparse input touches only its feature rows) and neuron-major
``[n_out, n_in]`` for every other layer (an active neuron reads one contiguous row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

_EMPTY_F32 = np.zeros(0, dtype=np.float32)
#: bias arguments of the row-wise Adam kernel for rows without a bias
NO_BIAS = (_EMPTY_F32, _EMPTY_F32, _EMPTY_F32, _EMPTY_F32)


@dataclass
class LayerParams:
    """Arrays of one layer; ``R`` optimiser rows of length ``C``, ``n_out`` neurons.

    Attributes
    ----------
    w, g, m, v : float32 (R, C)
        Weights, gradient accumulator (zero between batches), Adam first and second moments.
    b, gb, mb, vb : float32 (n_out,)
        Bias, its gradient accumulator and moments.
    row_step : int64 (R,)
        Adam steps taken by each row.
    stamp : int64 (R,)
        Global step at which each row last received gradient (-1: never in this process).
    bias_step, bias_stamp : int64 (1,)
        Step counter and stamp of the bias when it is a row of its own (first layer, whose rows
        are features, not neurons); unused otherwise.
    input_major : bool
        True for the first layer (rows are input features, the bias is a separate row).
    """

    w: np.ndarray
    g: np.ndarray
    m: np.ndarray
    v: np.ndarray
    b: np.ndarray
    gb: np.ndarray
    mb: np.ndarray
    vb: np.ndarray
    row_step: np.ndarray
    stamp: np.ndarray
    bias_step: np.ndarray
    bias_stamp: np.ndarray
    input_major: bool

    #: arrays that a checkpoint must hold (accumulators are zero and stamps stale between batches)
    STATE = ("w", "b", "m", "v", "mb", "vb", "row_step", "bias_step")

    @property
    def n_out(self) -> int:
        """Number of neurons of the layer."""
        return self.b.shape[0]

    @property
    def n_in(self) -> int:
        """Width of the layer's input."""
        return self.w.shape[0] if self.input_major else self.w.shape[1]

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        """The checkpointed arrays, keyed ``prefix + name`` (the live arrays, not copies)."""
        return {prefix + name: getattr(self, name) for name in self.STATE}

    def load(self, state: dict[str, np.ndarray], prefix: str) -> None:
        """Copy checkpointed arrays in place (shapes must match); reset accumulators and stamps."""
        for name in self.STATE:
            src = np.asarray(state[prefix + name])
            dst = getattr(self, name)
            if src.shape != dst.shape:
                raise ValueError(f"{prefix + name}: shape {src.shape}, expected {dst.shape}")
            dst[...] = src
        self.g[...] = 0.0
        self.gb[...] = 0.0
        self.stamp[...] = -1
        self.bias_stamp[...] = -1

    def all_finite(self) -> bool:
        """Whether weights and bias are all finite."""
        return bool(np.isfinite(self.w).all() and np.isfinite(self.b).all())

    def bias_rows(self) -> tuple[np.ndarray, ...]:
        """Bias arrays for the row-wise Adam kernel: the per-neuron bias, or empty arrays."""
        if self.input_major:
            return NO_BIAS
        return self.b, self.gb, self.mb, self.vb

    def nbytes(self) -> int:
        """Memory held by the layer's arrays."""
        return sum(getattr(self, f.name).nbytes for f in fields(self) if f.name != "input_major")


def init_layer(
    n_in: int,
    n_out: int,
    input_major: bool,
    init: str,
    std: float,
    rng: np.random.Generator,
    with_grad: bool = True,
) -> LayerParams:
    """Allocate and initialise one layer.

    Parameters
    ----------
    n_in, n_out : int
        Input width (``D`` for the first layer) and number of neurons.
    input_major : bool
        Store ``w`` as ``[n_in, n_out]`` (first layer) instead of ``[n_out, n_in]``.
    init : {"normal", "truncated_normal"}
        ``normal``: N(0, std^2), as the reference C++ (std 0.01). ``truncated_normal``: std
        ``2 / sqrt(n_in + n_out)`` re-drawn beyond two standard deviations, as the TensorFlow
        baselines. Biases are drawn like the weights in both cases.
    std : float
        Standard deviation of ``normal``.
    rng : numpy.random.Generator
        Source of the initial values.
    with_grad : bool
        Allocate the gradient accumulator ``g``; False for a layer whose gradient is summed
        per row at update time (``g`` is then empty, shape (0, C)).

    Returns
    -------
    LayerParams
        The layer, moments and counters zero, stamps -1.
    """
    shape = (n_in, n_out) if input_major else (n_out, n_in)
    if init == "normal":
        scale = np.float32(std)
        w = rng.standard_normal(shape, dtype=np.float32)
        b = rng.standard_normal(n_out, dtype=np.float32)
    elif init == "truncated_normal":
        scale = np.float32(2.0 / math.sqrt(n_in + n_out))
        w = _truncated(rng, shape)
        b = _truncated(rng, (n_out,))
    else:
        raise ValueError(f"unknown init {init!r}")
    w *= scale  # in place: no second weight-sized temporary at start-up
    b *= scale
    rows = shape[0]
    return LayerParams(
        w=w,
        g=np.zeros(shape if with_grad else (0, shape[1]), dtype=np.float32),
        m=np.zeros(shape, dtype=np.float32),
        v=np.zeros(shape, dtype=np.float32),
        b=b,
        gb=np.zeros(n_out, dtype=np.float32),
        mb=np.zeros(n_out, dtype=np.float32),
        vb=np.zeros(n_out, dtype=np.float32),
        row_step=np.zeros(rows, dtype=np.int64),
        stamp=np.full(rows, -1, dtype=np.int64),
        bias_step=np.zeros(1, dtype=np.int64),
        bias_stamp=np.full(1, -1, dtype=np.int64),
        input_major=input_major,
    )


def _truncated(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.standard_normal(shape, dtype=np.float32)
    bad = np.abs(x) > 2.0
    while bad.any():  # TensorFlow's rule: re-draw, do not clip
        x[bad] = rng.standard_normal(int(bad.sum()), dtype=np.float32)
        bad = np.abs(x) > 2.0
    return x
