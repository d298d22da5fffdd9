"""Device selection and thread pools for the TensorFlow baselines.

Thread counts must be set before TensorFlow runs its first op (they are fixed when the runtime
context is created), so the CLI calls :func:`configure_threads` right after parsing its flags.
A GPU run needs a visible GPU: we raise rather than silently run on the CPU under a GPU label.
"""

from __future__ import annotations

import os

import tensorflow as tf

from slide_engine.errors import ConfigError, GPUUnavailableError

__all__ = ["build_info", "configure_threads", "resolve_device"]


def configure_threads(threads: int) -> None:
    """Use ``threads`` intra-op and inter-op threads for all TensorFlow ops of this process.

    Parameters
    ----------
    threads : int
        Thread count (the suite's --threads); 0 leaves TensorFlow's default (all cores).

    Raises
    ------
    ConfigError
        If ``threads`` exceeds the cores this process may run on (as the engine, we refuse to
        oversubscribe: a benchmark at more threads than cores measures the scheduler).
    RuntimeError
        If TensorFlow already ran an op with different settings (a programming error).
    """
    if threads <= 0:
        return
    cores = len(os.sched_getaffinity(0))
    if threads > cores:
        raise ConfigError(f"--threads {threads}: this process may run on {cores} core(s) only")
    threading = tf.config.threading
    current = (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    )
    if current == (threads, threads):
        return
    threading.set_intra_op_parallelism_threads(threads)
    threading.set_inter_op_parallelism_threads(threads)


def resolve_device(device: str) -> str:
    """The TensorFlow device string for a --device choice.

    Parameters
    ----------
    device : {"cpu", "gpu"}

    Returns
    -------
    str
        "/CPU:0" or "/GPU:0".

    Raises
    ------
    GPUUnavailableError
        If "gpu" is requested and TensorFlow sees no GPU (exit code 3).
    """
    if device == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        build = tf.sysconfig.get_build_info()
        why = (
            "this TensorFlow build has no CUDA support (tensorflow-cpu)"
            if not build.get("is_cuda_build")
            else "no CUDA device is visible"
        )
        raise GPUUnavailableError(
            f"--device gpu requested but TensorFlow sees no GPU: {why}; "
            "run with --device cpu or on a machine with a GPU and the tensorflow[and-cuda] build"
        )
    return "/GPU:0"


def build_info(device: str) -> dict[str, str]:
    """Provenance of the TensorFlow runtime, for the run's sidecar.

    Parameters
    ----------
    device : str
        The TensorFlow device string in use.

    Returns
    -------
    dict of str to str
        TF version, build info (CUDA/cuDNN versions when present), device and its description,
        and the intra/inter-op thread settings.
    """
    info = {f"tf_build_{k}": str(v) for k, v in tf.sysconfig.get_build_info().items()}
    info["tf_version"] = tf.__version__
    info["tf_device"] = device
    kind = device.strip("/").split(":")[0]
    physical = tf.config.list_physical_devices(kind)
    if physical:
        details = tf.config.experimental.get_device_details(physical[0])
        info["tf_device_name"] = str(details.get("device_name", physical[0].name))
    threading = tf.config.threading
    info["tf_intra_op_threads"] = str(threading.get_intra_op_parallelism_threads())
    info["tf_inter_op_threads"] = str(threading.get_inter_op_parallelism_threads())
    return info
