"""Device selection, GPU diagnosis, thread pools and runtime provenance of the TF baselines.

Thread counts must be set before TensorFlow runs its first op (they are fixed when the runtime
context is created), so the CLI calls :func:`configure_threads` right after parsing its flags.
A GPU run needs a visible GPU: we raise rather than silently run on the CPU under a GPU label,
and say in one line why none is visible (:func:`gpu_unavailable_reason`: a CPU-only build of
TensorFlow, no NVIDIA driver, missing CUDA libraries, a driver too old for TensorFlow's CUDA, or
``CUDA_VISIBLE_DEVICES`` hiding them). The facts behind that line are gathered by
:func:`gpu_facts` and judged by a pure function, so every branch is tested on a machine without
a GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import os
import re
import sys
from importlib import metadata
from typing import Any

import tensorflow as tf

from slide_bench.errors import ConfigError, GPUUnavailableError
from slide_bench.runlog import gpu_inventory, installed_versions, parse_nvidia_smi

__all__ = [
    "CUDA_LIBRARIES",
    "build_info",
    "configure_threads",
    "cuda_wheels",
    "gpu_facts",
    "gpu_provenance",
    "gpu_unavailable_reason",
    "probe_devices",
    "resolve_device",
    "tf_distributions",
]

#: Distributions that install the ``tensorflow`` package folder (any two of them overwrite each
#: other's files; the suite installs ``tensorflow`` only).
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel")

#: Shared libraries a CUDA build of TensorFlow loads at start-up (``tensorflow[and-cuda]`` brings
#: them as NVIDIA's pip wheels under ``site-packages/nvidia/*/lib``).
CUDA_LIBRARIES = (
    "cudart", "cublas", "cublasLt", "cufft", "curand", "cusolver", "cusparse", "cudnn",
)

_INSTALL_GPU = "python -m pip install -e '.[gpu]'"


def probe_devices() -> list:
    """TensorFlow's physical devices; the first call initialises its platforms (CUDA's cuInit).

    Returns
    -------
    list of tf.config.PhysicalDevice
        Every device TensorFlow sees (CPU first).
    """
    return tf.config.list_physical_devices()


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
    if not tf.config.list_physical_devices("GPU"):
        raise GPUUnavailableError(
            "--device gpu requested but TensorFlow sees no GPU: "
            + gpu_unavailable_reason(gpu_facts())
        )
    return "/GPU:0"


def tf_distributions() -> dict[str, str]:
    """Installed distributions that provide the ``tensorflow`` package, name to version."""
    return installed_versions(TF_DISTRIBUTIONS)


def _nvidia_lib_dirs() -> list[str]:
    """``site-packages/nvidia/*/lib`` folders of NVIDIA's pip wheels (TensorFlow's rpath)."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(
        d for root in spec.submodule_search_locations for d in glob.glob(f"{root}/*/lib")
    )


def _find_library(name: str, wheel_dirs: list[str]) -> str | None:
    for folder in wheel_dirs:
        hits = sorted(glob.glob(f"{folder}/lib{name}.so*"))
        if hits:
            return hits[0]
    return ctypes.util.find_library(name)


def _driver() -> dict[str, Any]:
    """What the NVIDIA driver says: loadable, its CUDA version and its version string."""
    out: dict[str, Any] = {"driver_loadable": False, "driver_cuda": None, "driver_version": None}
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return out
    out["driver_loadable"] = True
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
        out["driver_cuda"] = f"{version.value // 1000}.{version.value % 1000 // 10}"
    try:
        with open("/proc/driver/nvidia/version") as fh:
            match = re.search(r"Kernel Module\s+([0-9][0-9.]*)", fh.read())
        out["driver_version"] = match.group(1) if match else None
    except OSError:
        pass
    return out


def gpu_facts() -> dict[str, Any]:
    """Everything :func:`gpu_unavailable_reason` needs, read from this machine.

    Returns
    -------
    dict
        ``build`` (``tf.sysconfig.get_build_info()``), ``distributions``
        (:func:`tf_distributions`), ``platform`` (``sys.platform``), ``visible_devices`` (the
        ``CUDA_VISIBLE_DEVICES`` value or None), ``driver_loadable``, ``driver_cuda`` ("12.4" or
        None), ``driver_version``, ``missing_libraries`` (of :data:`CUDA_LIBRARIES`, searched in
        NVIDIA's pip wheels and the loader path; only looked for in a CUDA build).
    """
    build = dict(tf.sysconfig.get_build_info())
    facts: dict[str, Any] = {
        "build": build,
        "distributions": tf_distributions(),
        "platform": sys.platform,
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        **_driver(),
        "missing_libraries": [],
    }
    if build.get("is_cuda_build"):
        dirs = _nvidia_lib_dirs()
        facts["missing_libraries"] = [
            f"lib{name}" for name in CUDA_LIBRARIES if _find_library(name, dirs) is None
        ]
    return facts


def gpu_unavailable_reason(facts: dict[str, Any]) -> str:
    """One sentence: why TensorFlow sees no GPU, and what to do.

    Parameters
    ----------
    facts : dict
        As returned by :func:`gpu_facts`.

    Returns
    -------
    str
        The first cause that applies, in this order: a CPU-only build of TensorFlow (or none
        for this platform), ``CUDA_VISIBLE_DEVICES`` hiding every GPU, no NVIDIA driver, CUDA
        libraries missing, a driver older than the CUDA TensorFlow was built with; else that
        TensorFlow rejected the GPU for a reason its own log gives.
    """
    build = facts["build"]
    dists = facts["distributions"]
    if not build.get("is_cuda_build"):
        if facts["platform"] != "linux":
            return (
                f"TensorFlow has no CUDA build for {facts['platform']} (only Linux x86_64 and "
                "aarch64); run with --device cpu"
            )
        installed = ", ".join(f"{k} {v}" for k, v in dists.items()) or "tensorflow"
        fix = _INSTALL_GPU
        if set(dists) - {"tensorflow"}:
            others = " ".join(sorted(set(dists)))
            fix = f"python -m pip uninstall -y {others} && {_INSTALL_GPU}"
        return f"this TensorFlow is a CPU-only build ({installed}); install the GPU build: {fix}"
    visible = facts["visible_devices"]
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU from this process"
    if not facts["driver_loadable"]:
        return (
            "no NVIDIA driver: libcuda.so.1 cannot be loaded (not a GPU node, or the driver is "
            "not installed or not mounted into this container; `nvidia-smi` should list the GPU)"
        )
    if facts["missing_libraries"]:
        return (
            f"CUDA libraries missing: {', '.join(facts['missing_libraries'])} not found; "
            f"install them with {_INSTALL_GPU} (tensorflow[and-cuda])"
        )
    # CUDA's minor-version compatibility: any driver of the same major CUDA version runs it
    needed, have = build.get("cuda_version"), facts["driver_cuda"]
    if needed and have and _major(have) < _major(str(needed)):
        return (
            f"the NVIDIA driver ({facts['driver_version'] or 'unknown version'}) supports CUDA "
            f"{have} but this TensorFlow needs CUDA {needed}; update the driver"
        )
    return (
        "a driver and the CUDA libraries are present but TensorFlow rejected every GPU (its log "
        "above says why: e.g. a compute capability below this build's "
        f"{build.get('cuda_compute_capabilities', '?')}, or the GPU is busy or in a bad state)"
    )


def _major(version: str) -> int:
    match = re.match(r"\s*(\d+)", version)
    return int(match.group(1)) if match else 0


def _pci_key(bus_id: str) -> tuple[int, ...] | None:
    """``0000:00:1e.0`` (TensorFlow) and ``00000000:00:1E.0`` (nvidia-smi) as one key."""
    match = re.fullmatch(r"(?:([0-9a-fA-F]+):)?([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-9a-fA-F]+)",
                         bus_id.strip())
    if not match:
        return None
    return tuple(int(g or "0", 16) for g in match.groups())


def _tf_gpu_description(index: int) -> str:
    """TensorFlow's description of its GPU ``index`` ("device: 0, name: ..., pci bus id: ...").

    Provenance must never stop a run: if TensorFlow cannot describe the device, the name and
    compute capability come from ``get_device_details`` (no bus id: then ``nvidia-smi`` is only
    trusted when it lists a single GPU).
    """
    try:
        from tensorflow.python.client import device_lib

        for dev in device_lib.list_local_devices():
            if dev.device_type == "GPU" and dev.name.endswith(f":{index}"):
                return dev.physical_device_desc
    except Exception:  # a private API: fall back to the public one below
        pass
    gpus = tf.config.list_physical_devices("GPU")
    if index >= len(gpus):
        return ""
    details = tf.config.experimental.get_device_details(gpus[index])
    capability = ".".join(str(v) for v in details.get("compute_capability", ()))
    return f"name: {details.get('device_name', '')}, compute capability: {capability}"


def gpu_provenance(index: int = 0, smi_output: str | None = None,
                   description: str | None = None) -> dict[str, str]:
    """Model, driver, memory and CUDA libraries of TensorFlow's GPU ``index``, for the sidecar.

    Parameters
    ----------
    index : int
        TensorFlow's GPU index (``/GPU:index``).
    smi_output : str, optional
        ``nvidia-smi`` output to use instead of running it
        (:func:`slide_bench.runlog.parse_nvidia_smi`).
    description : str, optional
        TensorFlow's physical device description to use instead of asking TensorFlow.

    Returns
    -------
    dict of str to str
        ``gpu_name``, ``gpu_compute_capability``, ``gpu_pci_bus_id``, ``gpu_driver_version``,
        ``gpu_driver_cuda``, ``gpu_memory_total_mib``, ``gpu_uuid`` (those that could be read),
        ``gpu_tf32`` (TensorFloat-32 matmuls enabled) and the versions of NVIDIA's CUDA wheels
        (``gpu_lib_<name>``).
    """
    out: dict[str, str] = {}
    desc = description if description is not None else _tf_gpu_description(index)
    for key, pattern in (("gpu_name", r"name: ([^,]+)"),
                         ("gpu_pci_bus_id", r"pci bus id: ([0-9a-fA-F:.]+)"),
                         ("gpu_compute_capability", r"compute capability: ([0-9.]+)")):
        match = re.search(pattern, desc)
        if match:
            out[key] = match.group(1).strip()
    rows = gpu_inventory() if smi_output is None else parse_nvidia_smi(smi_output)
    want = _pci_key(out.get("gpu_pci_bus_id", ""))
    match_rows = [r for r in rows if want is not None and _pci_key(r["pci_bus_id"]) == want]
    if not match_rows and len(rows) == 1:
        match_rows = rows  # one GPU: no ambiguity
    if match_rows:
        row = match_rows[0]
        out.setdefault("gpu_name", row["name"])
        out["gpu_driver_version"] = row["driver_version"]
        out["gpu_memory_total_mib"] = row["memory_total_mib"]
        out["gpu_uuid"] = row["uuid"]
    driver = _driver()
    if driver["driver_cuda"]:
        out["gpu_driver_cuda"] = driver["driver_cuda"]
    if driver["driver_version"]:
        out.setdefault("gpu_driver_version", driver["driver_version"])
    out["gpu_tf32"] = str(tf.config.experimental.tensor_float_32_execution_enabled())
    out.update({f"gpu_lib_{name}": version for name, version in cuda_wheels().items()})
    return out


def cuda_wheels() -> dict[str, str]:
    """Installed NVIDIA CUDA pip wheels (``nvidia-*-cu12``, what ``[and-cuda]`` brings), name to
    version."""
    out = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("nvidia-") and name.endswith("-cu12"):
            out[name] = dist.version
    return dict(sorted(out.items()))


def build_info(device: str) -> dict[str, str]:
    """Provenance of the TensorFlow runtime, for the run's sidecar.

    Parameters
    ----------
    device : str
        The TensorFlow device string in use.

    Returns
    -------
    dict of str to str
        TF version, build info (CUDA/cuDNN versions when present), the installed TensorFlow
        distributions, device and its description, the intra/inter-op thread settings, and on a
        GPU :func:`gpu_provenance` (model, driver, memory, CUDA libraries, TF32).
    """
    info = {
        f"tf_build_{k}": ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)
        for k, v in tf.sysconfig.get_build_info().items()
    }
    info["tf_version"] = tf.__version__
    info["tf_device"] = device
    kind = device.strip("/").split(":")[0]
    physical = tf.config.list_physical_devices(kind)
    if physical:
        details = tf.config.experimental.get_device_details(physical[0])
        info["tf_device_name"] = str(details.get("device_name", physical[0].name))
    info["tf_distributions"] = ", ".join(f"{k} {v}" for k, v in tf_distributions().items())
    if kind == "GPU":
        info.update(gpu_provenance(int(device.rsplit(":", 1)[-1])))
    threading = tf.config.threading
    info["tf_intra_op_threads"] = str(threading.get_intra_op_parallelism_threads())
    info["tf_inter_op_threads"] = str(threading.get_inter_op_parallelism_threads())
    return info
