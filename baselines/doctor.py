"""``python -m baselines doctor``: can this machine run the TensorFlow baselines on its GPU?

Prints TensorFlow's build (CPU-only or CUDA, with the CUDA and cuDNN versions it was built
with), the installed TensorFlow distributions and CUDA libraries, the NVIDIA driver and the
devices TensorFlow sees. Then, on the device to check (``--device auto``: the GPU if one is
visible, else nothing; ``gpu``; ``cpu``), it trains a few steps of full and of sampled softmax
on a tiny generated set with the placement of every executed op captured, and asserts:

* placement: the step's matmuls, softmax (exponentials, logarithms) and optimiser updates ran on
  that device (:mod:`baselines.placement`; TensorFlow would otherwise fall back to the CPU
  silently);
* numbers: on a GPU, each step's loss equals that of the same steps on the CPU, from the same
  weights and random state, within ``GPU_RTOL`` (GPU matmuls use TensorFloat-32 by default);
  everywhere, the first full-softmax loss equals a NumPy float64 forward pass within
  ``ORACLE_RTOL``.

Exit status: 0 when every requested check passed (also when ``auto`` finds no GPU: it says so
and why); 3 when ``--device gpu`` finds no GPU (one line: a CPU-only build of TensorFlow, no
driver, missing CUDA libraries, ...); 1 when a check failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from baselines.config import BaselineConfig
from baselines.device import (
    build_info,
    cuda_wheels,
    gpu_facts,
    gpu_provenance,
    gpu_unavailable_reason,
    resolve_device,
)
from baselines.placement import PlacedOp, PlacementReport, capture, check
from baselines.samplers import sample_candidates
from baselines.stderr import held_stderr
from baselines.trainable import TFSoftmaxTrainable
from slide_bench.data import generate
from slide_bench.harness import epoch_order

__all__ = ["GPU_RTOL", "ORACLE_RTOL", "StepCheck", "numpy_full_softmax_loss", "run", "run_check"]

#: Relative tolerance of a GPU step's loss against the CPU's. TensorFloat-32 matmuls (TF's
#: default on Ampere and newer) round inputs to 10 mantissa bits, and Adam's first steps move a
#: weight by +-lr whatever the gradient's size, so a near-zero gradient rounded to the other sign
#: moves it the other way: a few 1e-4 of the loss after five steps is expected, 1e-3 is not.
GPU_RTOL = 1e-3
#: Relative tolerance of TensorFlow's first full-softmax loss (float32) against NumPy (float64).
ORACLE_RTOL = 1e-4
#: Preset of the generated set (2,000 points, D = 2,000, L = 500) and the batch size.
PRESET, BATCH = "tiny", 128


@dataclass
class StepCheck:
    """What one model's check found on one device.

    Attributes
    ----------
    model : str
        "full" or "sampled".
    device : str
        TensorFlow device string checked.
    losses : list of float
        Loss of each step on that device.
    reference : list of float or None
        Loss of the same steps on the CPU (GPU checks only).
    oracle_rel : float or None
        |first loss - NumPy float64 loss| / NumPy loss (full softmax only).
    placement : baselines.placement.PlacementReport
    ms_per_step : float
        Median wall time of the checked steps (a tiny set: not a benchmark).
    nodes : list of baselines.placement.PlacedOp
        Every executed node and its device (warm-up and steps).
    same_draws : bool or None
        Sampled softmax: whether the device's generator draws the same classes as the CPU's
        from the same state (if not, the losses cannot agree; TensorFlow's Philox kernels are
        meant to agree across CPU and GPU). None for full softmax.
    """

    model: str
    device: str
    losses: list[float]
    reference: list[float] | None
    oracle_rel: float | None
    placement: PlacementReport
    ms_per_step: float
    nodes: list[PlacedOp]
    same_draws: bool | None = None

    @property
    def reference_rel(self) -> float | None:
        """Largest relative difference between the device's and the CPU's losses."""
        if self.reference is None:
            return None
        a, b = np.asarray(self.losses), np.asarray(self.reference)
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))

    @property
    def ok(self) -> bool:
        """Placement right, losses finite and within tolerance of the references."""
        finite = bool(np.all(np.isfinite(self.losses)))
        ref = self.reference_rel
        return (
            finite
            and self.placement.ok
            and (ref is None or ref <= GPU_RTOL)
            and (self.oracle_rel is None or self.oracle_rel <= ORACLE_RTOL)
        )


def numpy_full_softmax_loss(state: dict[str, np.ndarray], data, rows: np.ndarray) -> float:
    """The suite's full-softmax batch loss in float64 NumPy, straight from the CSR data.

    Parameters
    ----------
    state : dict
        A model's ``state_dict()`` (``net/w1`` [D, H], ``net/b1`` [H], ``net/w2`` [L, H],
        ``net/b2`` [L]).
    data : slide_bench.data.XCData
    rows : ndarray of int, shape (B,)

    Returns
    -------
    float
        Mean over the labelled points of ``logsumexp(z) - mean(z[labels])``.
    """
    w1, b1 = state["net/w1"].astype(np.float64), state["net/b1"].astype(np.float64)
    w2, b2 = state["net/w2"].astype(np.float64), state["net/b2"].astype(np.float64)
    losses = []
    for r in rows:
        lo, hi = data.x_indptr[r], data.x_indptr[r + 1]
        x = data.x_values[lo:hi].astype(np.float64)
        hidden = np.maximum(x @ w1[data.x_indices[lo:hi]] + b1, 0.0)
        z = w2 @ hidden + b2
        labels = data.y_indices[data.y_indptr[r] : data.y_indptr[r + 1]]
        if len(labels) == 0:
            continue
        top = z.max()
        losses.append(top + np.log(np.exp(z - top).sum()) - z[labels].mean())
    return float(np.mean(losses))


def _steps(model: TFSoftmaxTrainable, batches: list[np.ndarray]) -> tuple[list[float], float]:
    losses, times = [], []
    for rows in batches:
        t0 = time.perf_counter()
        losses.append(model.train_batch(rows))
        times.append(time.perf_counter() - t0)
    return losses, 1e3 * float(np.median(times))


def run_check(model_kind: str, device: str, steps: int, seed: int = 0) -> StepCheck:
    """Train ``steps`` steps of one baseline on ``device`` with its placement captured.

    Parameters
    ----------
    model_kind : {"full", "sampled"}
    device : {"cpu", "gpu"}
    steps : int
        Training steps checked (after the harness's warm-up).
    seed : int
        Seed of the generated set, the weights and the sampler.

    Returns
    -------
    StepCheck
    """
    train, _ = generate(PRESET, seed)
    order = epoch_order(train.n_points, seed, 0)
    batches = [order[i * BATCH : (i + 1) * BATCH] for i in range(steps)]
    # lr 1e-3: the steps must move the loss for the comparison to mean something
    config = {"model": model_kind, "lr": 1e-3}
    reference = None
    state = None
    if device != "cpu":
        cpu = TFSoftmaxTrainable(BaselineConfig(device="cpu", **config), seed)
        cpu.prepare(train)
        state = cpu.state_dict()
        cpu.warmup(batches[0])
        reference, _ = _steps(cpu, batches)
    model = TFSoftmaxTrainable(BaselineConfig(device=device, **config), seed)
    model.prepare(train)
    if state is not None:
        model.load_state_dict(state)  # the same weights and random state as the CPU run
    state = model.state_dict()
    with capture() as nodes:
        model.warmup(batches[0])  # traces and instantiates the step: its placement is recorded
        losses, ms = _steps(model, batches)
    oracle = None
    if model_kind == "full":
        exact = numpy_full_softmax_loss(state, train, batches[0])
        oracle = abs(losses[0] - exact) / abs(exact)
    same = _same_draws(model, state) if model_kind == "sampled" else None
    return StepCheck(model_kind, model.tf_device, losses, reference, oracle,
                     check(nodes, model.tf_device), ms, nodes, same)


def _same_draws(model: TFSoftmaxTrainable, state: dict[str, np.ndarray]) -> bool:
    """Do the model's device and the CPU draw the same sampled classes from generator state
    ``state["rng/state"]``?"""
    draws = []
    for device in (model.tf_device, "/CPU:0"):
        with tf.device(device):
            gen = tf.random.Generator.from_state(state["rng/state"], model._gen.algorithm)
            draws.append(np.sort(sample_candidates(gen, model._log_p, model._n_sampled).numpy()))
    return bool(np.array_equal(*draws))


def _build_line(info: dict[str, str]) -> str:
    dists = info.get("tf_distributions") or "no distribution metadata"
    if info.get("tf_build_is_cuda_build") == "True":
        build = (f"CUDA build (CUDA {info.get('tf_build_cuda_version', '?')}, cuDNN "
                 f"{info.get('tf_build_cudnn_version', '?')}, compute capabilities "
                 f"{info.get('tf_build_cuda_compute_capabilities', '?')})")
    elif info.get("tf_build_is_rocm_build") == "True":
        build = "ROCm build (AMD GPUs; not supported by this suite's GPU path)"
    else:
        build = "CPU-only build (no CUDA support)"
    return f"TensorFlow {info['tf_version']} ({dists}): {build}"


def run(device: str = "auto", steps: int = 5, seed: int = 0, log_placement: bool = False,
        out: Callable[[str], None] = print, debug: bool = False) -> int:
    """The doctor; returns the exit status (raises GPUUnavailableError for ``--device gpu``).

    Parameters
    ----------
    device : {"auto", "cpu", "gpu"}
        What to check: the GPU if visible (auto), the CPU device (cpu: the same checks, e.g. on
        a machine without a GPU), or the GPU, which must be visible (gpu).
    steps : int
        Training steps per model.
    seed : int
        Seed of data, weights and sampler.
    log_placement : bool
        Also print every executed node with its device.
    out : callable
        Where lines go.
    debug : bool
        Show what TensorFlow wrote to stderr while it probed for GPUs (held back otherwise).

    Returns
    -------
    int
        0 if every requested check passed, 1 otherwise.
    """
    with held_stderr(show=debug):  # a CUDA build without a driver complains here, in C++
        gpus = tf.config.list_physical_devices("GPU")
        facts = gpu_facts()
    if device == "gpu":
        resolve_device("gpu")  # one line and exit 3 when none is visible
    _report_machine(gpus, facts, out)
    target = "gpu" if device == "gpu" or (device == "auto" and gpus) else device
    if target == "auto":
        out("doctor: OK (CPU only; `--device gpu` runs would exit 3 for the reason above; "
            "`--device cpu` checks the training step on the CPU)")
        return 0
    results = []
    for kind in ("full", "sampled"):
        result = run_check(kind, target, steps, seed)
        results.append(result)
        _report_check(kind, steps, result, log_placement, out)
    failed = [r.model for r in results if not r.ok]
    where = results[0].placement.device
    if failed:
        out(f"doctor: FAILED on {where}: {', '.join(failed)} softmax (see above)")
        return 1
    out(f"doctor: OK ({where} runs the full- and sampled-softmax steps: placement and losses "
        "checked)")
    return 0


def _report_machine(gpus: list, facts: dict, out: Callable[[str], None]) -> None:
    """TensorFlow's build, the CUDA wheels, the driver and the devices (lines of the report)."""
    info = build_info("/CPU:0")
    out(_build_line(info))
    dists = facts["distributions"]
    if len(dists) > 1:
        out(f"warning: {' and '.join(dists)} are all installed and share one package folder "
            "(the files are whichever was installed last); uninstall them all and reinstall "
            "the suite")
    out("CUDA libraries (pip): "
        + (", ".join(f"{k} {v}" for k, v in cuda_wheels().items()) or "none installed"))
    if facts["driver_loadable"]:
        out(f"NVIDIA driver: {facts['driver_version'] or 'version unknown'} "
            f"(CUDA {facts['driver_cuda'] or '?'})")
    else:
        out("NVIDIA driver: none (libcuda.so.1 not loadable)")
    devices = ["CPU:0"]
    for i, gpu in enumerate(gpus):
        prov = gpu_provenance(i)
        devices.append(f"GPU:{i} {prov.get('gpu_name', gpu.name)} (compute "
                       f"{prov.get('gpu_compute_capability', '?')}, "
                       f"{prov.get('gpu_memory_total_mib', '?')} MiB, driver "
                       f"{prov.get('gpu_driver_version', '?')}, TF32 {prov.get('gpu_tf32')})")
    out("devices: " + "; ".join(devices))
    if not gpus:
        out(f"no GPU visible: {gpu_unavailable_reason(facts)}")


def _report_check(kind: str, steps: int, result: StepCheck, log_placement: bool,
                  out: Callable[[str], None]) -> None:
    """The lines of one model's check: losses, placement, agreement with CPU and NumPy."""
    out(f"{kind} softmax on {result.placement.device}: {steps} steps, loss "
        f"{result.losses[0]:.5f} -> {result.losses[-1]:.5f}, {result.ms_per_step:.1f} "
        "ms/step (tiny set)")
    for line in result.placement.lines():
        out(f"  placement: {line}")
    if result.reference is not None:
        out(f"  loss vs the CPU run: max relative difference {result.reference_rel:.2e} "
            f"(tolerance {GPU_RTOL:.0e})")
    if result.same_draws is not None:
        out(f"  sampled classes drawn on {result.placement.device} and on CPU:0 from one "
            f"generator state: {'identical' if result.same_draws else 'DIFFERENT'}")
    if result.oracle_rel is not None:
        out(f"  first loss vs NumPy float64: relative difference {result.oracle_rel:.2e} "
            f"(tolerance {ORACLE_RTOL:.0e})")
    if log_placement:
        for node in result.nodes:
            out(f"    {node.device:8s} {node.op:28s} {node.name}")

