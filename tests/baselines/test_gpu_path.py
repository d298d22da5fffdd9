"""The GPU path on a machine without a GPU: TensorFlow's CPU device stands in where it can.

Placement: a real training step's executed graph is captured and judged on the CPU device (and
must fail when judged against the GPU). Timing: TensorFlow's asynchronous eager mode on the CPU
behaves like a GPU stream (ops return when queued), so it shows that :func:`finish` waits for
queued work that a plain read of an already computed loss would not. Diagnosis and provenance:
the pure functions get the facts a GPU machine would give. The doctor runs end to end.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from baselines.config import BaselineConfig
from baselines.device import gpu_provenance, gpu_unavailable_reason
from baselines.doctor import numpy_full_softmax_loss
from baselines.placement import CATEGORIES, PlacedOp, capture, check, classify
from baselines.timing import finish
from baselines.trainable import TFSoftmaxTrainable
from slide_bench.data import generate
from slide_bench.runlog import gpu_inventory, parse_nvidia_smi, provenance

REPO = Path(__file__).resolve().parents[2]
HAS_GPU = bool(tf.config.list_physical_devices("GPU"))


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", 0)


def _model(train, **settings) -> TFSoftmaxTrainable:
    model = TFSoftmaxTrainable(BaselineConfig(**settings), seed=1)
    model.prepare(train)
    return model


# -- placement ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("settings", [{"model": "full"}, {"model": "sampled", "adam": "lazy"}])
def test_captured_step_runs_on_the_cpu_device_and_fails_a_gpu_requirement(tiny, settings):
    train, _ = tiny
    model = _model(train, **settings)
    with capture() as nodes:
        model.warmup(np.arange(128))
        model.train_batch(np.arange(128, 256))
    on_cpu = check(nodes, model.tf_device)
    assert on_cpu.ok, on_cpu.lines()
    assert set(on_cpu.counts) == set(CATEGORIES)
    assert all(set(c) == {"CPU:0"} for c in on_cpu.counts.values())
    # the same execution judged against the GPU: every checked op is reported misplaced
    on_gpu = check(nodes, "/GPU:0")
    assert not on_gpu.ok
    assert len(on_gpu.misplaced) == sum(sum(c.values()) for c in on_cpu.counts.values())
    assert {classify(n) for n in on_gpu.misplaced} == set(CATEGORIES)


def test_nothing_captured_means_missing_categories_not_success():
    with capture() as nodes:
        pass
    report = check(nodes, "/CPU:0")
    assert not report.ok and report.missing == list(CATEGORIES)


def test_classify_knows_grappler_names_and_ignores_integer_bookkeeping():
    f32, i32, i64 = 1, 3, 9  # DataType enum: DT_FLOAT, DT_INT32, DT_INT64

    def cat(op: str, dtype: int | None = f32) -> str | None:
        return classify(PlacedOp("n", op, dtype, "GPU:0"))

    assert cat("MatMul") == cat("_MklMatMul") == cat("_FusedMatMul") == "matmul"
    assert cat("_MklNativeFusedMatMul") == cat("BatchMatMulV2") == "matmul"
    assert cat("Exp") == cat("Log") == cat("Softmax") == cat("_MklSoftmax") == "softmax"
    assert cat("ResourceApplyAdam") == cat("ResourceScatterUpdate") == "optimiser"
    assert cat("ResourceScatterUpdate", i64) is None  # lazy Adam's per-row step counts
    assert cat("Sum", i32) is None and cat("Shape", i32) is None and cat("AddV2") is None


# -- timing -------------------------------------------------------------------------------


def test_finish_waits_for_queued_device_work_that_reading_the_loss_does_not():
    stamps: list[float] = []

    def late_kernel() -> float:
        time.sleep(0.3)  # stands for the optimiser's kernels queued after the loss
        stamps.append(time.perf_counter())
        return 0.0

    queued = tf.function(lambda: tf.py_function(late_kernel, [], tf.float32))
    queued()  # traced while synchronous
    tf.test.experimental.sync_devices()
    tf.config.experimental.set_synchronous_execution(False)  # the CPU behaves like a GPU stream
    try:
        results = {}
        for how in ("read", "finish"):
            stamps.clear()
            loss = tf.constant(2.0) * 3.0
            float(loss)  # the loss is computed ...
            queued()  # ... and more work is queued behind it, as on a GPU
            value = finish(loss) if how == "finish" else float(loss)
            stop = time.perf_counter()
            results[how] = (value, bool(stamps) and stamps[0] <= stop)
            tf.test.experimental.sync_devices()
    finally:
        tf.test.experimental.sync_devices()
        tf.config.experimental.set_synchronous_execution(True)
    assert results["read"] == (6.0, False)  # the stand-in is asynchronous: a read under-times
    assert results["finish"] == (6.0, True)  # finish stops the clock after the queued work


def test_training_under_asynchronous_execution_equals_synchronous(tiny):
    train, _ = tiny
    rows = [np.arange(i * 128, (i + 1) * 128) for i in range(3)]
    sync_model = _model(train)
    sync_losses = [sync_model.train_batch(r) for r in rows]
    async_model = _model(train)
    tf.config.experimental.set_synchronous_execution(False)
    try:
        async_losses = [async_model.train_batch(r) for r in rows]
        stats = async_model.stats()
    finally:
        tf.test.experimental.sync_devices()
        tf.config.experimental.set_synchronous_execution(True)
    assert async_losses == sync_losses
    a, b = sync_model.state_dict(), async_model.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert stats["t_host"] > 0 and stats["t_step"] > stats["t_host"]


def test_inputs_are_made_on_the_model_device(tiny):
    train, _ = tiny
    model = _model(train)
    inputs = model.batch_inputs(np.arange(64))
    assert [t.dtype for t in inputs] == [s.dtype for s in model.input_signature]
    assert all(t.device.endswith("CPU:0") for t in inputs)


def test_numpy_oracle_equals_the_first_training_loss(tiny):
    train, _ = tiny
    model = _model(train, model="full")
    state = model.state_dict()
    rows = np.arange(300, 428)
    loss = model.train_batch(rows)
    assert abs(loss - numpy_full_softmax_loss(state, train, rows)) < 1e-5 * abs(loss)


# -- diagnosis and provenance ---------------------------------------------------------------

CUDA_BUILD = {"is_cuda_build": True, "cuda_version": "12.5.1", "cudnn_version": "9",
              "cuda_compute_capabilities": ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]}


def facts(**changes):
    base = {"build": CUDA_BUILD, "distributions": {"tensorflow": "2.21.0"}, "platform": "linux",
            "visible_devices": None, "driver_loadable": True, "driver_cuda": "12.4",
            "driver_version": "550.54.15", "missing_libraries": []}
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"build": {"is_cuda_build": False}, "distributions": {"tensorflow-cpu": "2.21.0"}},
         "CPU-only build (tensorflow-cpu 2.21.0); install the GPU build: python -m pip "
         "uninstall -y tensorflow-cpu && python -m pip install -e '.[gpu]'"),
        ({"build": {"is_cuda_build": False}}, "CPU-only build (tensorflow 2.21.0); install the "
         "GPU build: python -m pip install -e '.[gpu]'"),
        ({"build": {"is_cuda_build": False}, "platform": "darwin"}, "no CUDA build for darwin"),
        ({"visible_devices": ""}, "CUDA_VISIBLE_DEVICES='' hides every GPU"),
        ({"visible_devices": "-1", "driver_loadable": False}, "CUDA_VISIBLE_DEVICES='-1'"),
        ({"driver_loadable": False, "missing_libraries": ["libcudnn"]}, "no NVIDIA driver"),
        ({"missing_libraries": ["libcudnn", "libcublas"]},
         "CUDA libraries missing: libcudnn, libcublas not found; install them with python -m "
         "pip install -e '.[gpu]'"),
        ({"driver_cuda": "11.8", "driver_version": "520.61.05"},
         "driver (520.61.05) supports CUDA 11.8 but this TensorFlow needs CUDA 12.5.1"),
        ({}, "TensorFlow rejected every GPU"),
        ({"visible_devices": "0"}, "TensorFlow rejected every GPU"),
    ],
)
def test_gpu_unavailable_reason_names_the_first_cause(changes, expected):
    reason = gpu_unavailable_reason(facts(**changes))
    assert expected in reason
    assert "\n" not in reason


def test_this_machines_reason_matches_its_build():
    from baselines.device import gpu_facts

    found = gpu_facts()
    reason = gpu_unavailable_reason(found)
    if not found["build"].get("is_cuda_build"):
        assert "CPU-only build" in reason
    else:
        assert not reason.startswith("this TensorFlow is a CPU-only build")


SMI = """00000000:00:1E.0, Tesla V100-SXM2-32GB, 535.104.05, 32768, GPU-1a2b
00000000:3B:00.0, NVIDIA A100-SXM4-40GB, 535.104.05, 40960, GPU-3c4d
"""


def test_nvidia_smi_rows_and_the_gpu_tensorflow_uses():
    rows = parse_nvidia_smi(SMI)
    assert [r["memory_total_mib"] for r in rows] == ["32768", "40960"]
    desc = ("device: 0, name: NVIDIA A100-SXM4-40GB, pci bus id: 0000:3b:00.0, "
            "compute capability: 8.0")
    prov = gpu_provenance(0, smi_output=SMI, description=desc)
    assert prov["gpu_name"] == "NVIDIA A100-SXM4-40GB"
    assert prov["gpu_compute_capability"] == "8.0"
    assert prov["gpu_memory_total_mib"] == "40960" and prov["gpu_uuid"] == "GPU-3c4d"
    assert prov["gpu_driver_version"] == "535.104.05"
    assert prov["gpu_tf32"] in ("True", "False")
    # no bus id to match and two GPUs: no guess
    assert "gpu_memory_total_mib" not in gpu_provenance(0, smi_output=SMI, description="")


def test_every_sidecar_lists_the_machines_gpus():
    record = provenance({}, 1, "cpu")
    if shutil.which("nvidia-smi") is None:
        assert record["gpus"] == []  # no driver tools: an empty list, not an error
    else:
        assert record["gpus"] == gpu_inventory() and all("name" in g for g in record["gpus"])


# -- the doctor, end to end ------------------------------------------------------------------


def doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "baselines", "doctor", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(HAS_GPU, reason="a GPU is visible")
def test_doctor_without_gpu_reports_the_build_and_exits_0_and_gpu_request_exits_3():
    proc = doctor()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"TensorFlow {tf.__version__} (")
    build = "CUDA build" if tf.sysconfig.get_build_info().get("is_cuda_build") else "CPU-only"
    assert build in lines[0]
    assert any(line.startswith("no GPU visible: ") for line in lines)
    assert lines[-1].startswith("doctor: OK (CPU only")
    gpu = doctor("--device", "gpu")
    assert gpu.returncode == 3
    assert gpu.stdout == ""
    err = gpu.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --device gpu requested but TensorFlow sees"
                                               " no GPU: "), gpu.stderr


@pytest.mark.slow
def test_doctor_on_the_cpu_device_checks_placement_and_losses():
    proc = doctor("--device", "cpu", "--steps", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for kind in ("full", "sampled"):
        assert f"{kind} softmax on CPU:0: 3 steps" in out
    for category in CATEGORIES:
        assert out.count(f"placement: {category:10s}") == 2
    assert "MISPLACED" not in out and "first loss vs NumPy float64" in out
    assert "from one generator state: identical" in out
    assert out.splitlines()[-1].startswith("doctor: OK (CPU:0 runs")
