"""``python -m slide_bench.bench``: steady-state speed, memory and start-up of every method.

Example (the Amazon-670K-shaped measurement, about 15 minutes on 2 cores)::

    python -m slide_bench.bench --preset amazon670k-like --train-points 20000 \
        --threads 1,2 --batches 30 --warmup 5 --methods slide,tf-full,tf-sampled \
        --out results/bench-amazon.csv

    python -m slide_bench.bench --preset tiny --batches 5 --out /tmp/bench.csv   # CI smoke

    python -m slide_bench.bench --preset amazon670k-like --train-points 20000 \
        --threads 8 --device gpu --methods slide,tf-full,tf-sampled --out bench-gpu.csv

What is measured, and how:

- The data are generated once by the parent (:func:`slide_bench.data.generate` on the preset,
  with ``n_train = --train-points`` and ``n_test = --test-points``; every other size of the
  preset is kept, so the network has the preset's full D and L) and saved as npz. Every method
  then runs in a subprocess of its own per thread count, so its peak RSS is its own and its
  thread pools are fixed before anything runs: ``NUMBA_NUM_THREADS``, ``OMP/MKL/OPENBLAS``,
  ``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS`` are set in the child's environment and
  TensorFlow is configured with :func:`baselines.device.configure_threads` before its first op.
- Each worker does what :func:`slide_bench.harness.run` does before its loop: ``prepare``
  (timed: ``startup_seconds``), ``warmup`` on the first batch; then ``--warmup`` untimed training
  batches, then ``--batches`` timed ``train_batch`` calls on the batches of
  :func:`slide_bench.harness.epoch_order` (the same rows, in the same order, for every method).
  Per batch it records wall time (``perf_counter``) and process CPU time (``process_time``, all
  threads): on a shared machine the CPU time is the steadier number, the wall time the goal;
  ``cpu_share`` (CPU seconds per wall second) shows how much of the machine the worker got.
- ``--trained-steps N`` (SLIDE methods): before the warm-up batches the network trains ``N``
  untimed steps on a batch stream of its own (seed + 1), so the timed batches stay those of the
  other methods. A fresh network's tables hold its initial weights' hashes and the samples of a
  batch share most active neurons; after a few hundred steps the active sets are smaller but
  more sample-specific (``docs/performance.md``), so the steady state of a training run is
  measured with ``N`` in the thousands (pass the run's ``--set lr=...`` too). TensorFlow's cost
  per step does not depend on its weights, so TF methods ignore it (``trained_steps`` 0).
  ``first_timed_step`` is the optimiser step of the first timed batch.
- ``ms_per_batch_median``/``p10``/``p90``/``mean`` summarise the timed batches. SLIDE's table
  rebuild (every ``rebuild_every`` batches: the schedule's samples over the batch size) falls
  outside a short window, so the worker also times one scheduled rebuild explicitly after the
  timed batches (``rebuild_seconds``; with lazy Adam it re-hashes only the neurons moved since
  start-up, as the engine's schedule does) and
  reports the amortised cost ``ms_per_batch_amortised = median + rebuild / rebuild_every``.
- Peak memory: the worker's high-water RSS (``VmHWM``, else ``ru_maxrss``: ``peak_rss_mb``)
  and the same before ``prepare`` (``base_rss_mb``: interpreter, libraries and data), so
  ``model_rss_mb`` is what the method added. SLIDE also reports the bytes of its arrays
  (``model_bytes_mb``, tables included).
- Profile: SLIDE's phase timers from ``stats()`` (hash, forward, backward, update, tables) per
  timed batch; TensorFlow's host-side batch preparation vs the compiled step (``t_host``,
  ``t_step``).
- The machine's memory (:mod:`slide_bench.machine`): a NumPy copy of a 512 MiB array
  (``mem_bandwidth_gbs``, streaming, best of 5) and a lazy-Adam step over up to 65,536 random
  rows of three ``(n_labels, 128)`` arrays at each thread count, the counts taking turns, median
  of 15 (``row_update_gbs``: the access pattern of SLIDE's output layer). SLIDE's estimated
  traffic per batch is shown against the latter, and ``machine_row_speedup`` (its rate at the
  most threads over 1 thread) is what a memory-bound kernel can gain from the extra threads
  here (it moves between ~1.5 and ~2.0 from run to run on the shared host).
- ``--device gpu`` runs the TensorFlow methods on the GPU (SLIDE always runs on the CPU's
  threads: the paper's comparison); without a visible GPU the bench stops before generating data
  with exit status 3 and the reason (``baselines.device``). TF's ``train_batch`` waits for the
  device before it returns (``baselines.timing.finish``), so a GPU batch's time includes the
  host-to-device copies and every kernel of the step. Rows carry ``device`` and, for GPU rows,
  the GPU's model, driver, memory, TensorFlow's peak GPU memory (``gpu_peak_mb``; the RSS
  columns are host memory) and TensorFlow's CUDA build.
- Optionally (``--accuracy-seconds S``) every method also trains for ``S`` training seconds in
  the shared harness at the highest thread count, evaluated every ``--eval-every`` batches; the
  parent then reports each method's time to reach the goals' headline level (``headline_level``
  of ``config/goals.yaml``: 90 %) of the best subset P@1 any method reached, the pipeline's rule.

The parent prints the per-method table and the ratios against the goals of ``config/goals.yaml``
(PASS/FAIL; ``--goals`` reads another file), and writes tidy CSV rows (one per method and thread
count) with provenance columns.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slide_bench.cli import add_set_argument, nest, parse_sets
from slide_bench.machine import measure_bandwidth, measure_row_update
from slide_bench.methods import Method, get_method, method_names

__all__ = ["CSV_COLUMNS", "GOALS_FILE", "Goals", "load_goals", "main", "measure_bandwidth"]

#: Methods the bench runs when ``--methods`` is not given: the paper's comparison. Any method of
#: the registry (:mod:`slide_bench.methods`) can be benched: ``slide-dwta`` is the shipped
#: Amazon-670K hashing, ``slide-dwta-ref`` the configuration of the reference C++ figure.
DEFAULT_METHODS = method_names("paper")

#: The goals and the reference figures they compare with (a data file of the repository).
GOALS_FILE = Path(__file__).resolve().parent.parent / "config" / "goals.yaml"
_OPS = (">=", "<=", ">")


@dataclass(frozen=True)
class Goals:
    """The bench's goals, read from :data:`GOALS_FILE` by :func:`load_goals`."""

    #: name -> (target, op, description); a value passes when ``value op target``
    targets: dict[str, tuple[float, str, str]]
    #: the reference C++ SLIDE's ms per batch by thread count (Amazon-670K shape)
    cpp_ms_per_batch: dict[int, float]
    #: time-to-target level: a fraction of the best P@1 any benched method reached
    headline_level: float


def load_goals(path: str | os.PathLike[str] = GOALS_FILE) -> Goals:
    """Read and check the goals file.

    Raises
    ------
    ConfigError
        The file is missing or not YAML, or a field is missing or of the wrong type (named).
    """
    import yaml

    from slide_bench.errors import ConfigError

    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text())
        targets = {}
        for name, goal in tree["goals"].items():
            where = f"goals.{name}"
            if goal["op"] not in _OPS:
                raise ConfigError(f"{path}: {where}.op must be one of {', '.join(_OPS)}")
            targets[name] = (float(goal["target"]), goal["op"], str(goal["description"]))
        cpp = {int(k): float(v) for k, v in tree["reference"]["cpp_ms_per_batch"].items()}
        return Goals(targets, cpp, float(tree["headline_level"]))
    except OSError as err:
        raise ConfigError(f"cannot read the goals file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"the goals file {path} is not valid YAML: {err}") from err
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"the goals file {path}: missing or malformed field {err}") from err


#: Columns of the output CSV, in order (tidy: one row per method and thread count).
CSV_COLUMNS: tuple[str, ...] = (
    "method",
    "threads",
    "device",
    "status",
    "preset",
    "n_train",
    "n_features",
    "n_labels",
    "batch_size",
    "warmup_batches",
    "trained_steps",
    "first_timed_step",
    "timed_batches",
    "ms_per_batch_median",
    "ms_per_batch_p10",
    "ms_per_batch_p90",
    "ms_per_batch_mean",
    "ms_per_batch_amortised",
    "cpu_ms_per_batch_median",
    "cpu_share",
    "peak_rss_mb",
    "base_rss_mb",
    "model_rss_mb",
    "model_bytes_mb",
    "startup_seconds",
    "startup_cpu_seconds",
    "warmup_seconds",
    "rebuild_seconds",
    "rebuild_cpu_seconds",
    "rebuild_every",
    "active_mean",
    "unique_active",
    "traffic_pairs_gb",
    "traffic_unique_gb",
    "phase_clock",
    "t_hash_ms",
    "t_forward_ms",
    "t_backward_ms",
    "t_update_ms",
    "t_tables_ms",
    "t_host_ms",
    "t_step_ms",
    "tta_seconds",
    "final_p_at_1",
    "mem_bandwidth_gbs",
    "row_update_gbs",
    "machine_row_speedup",
    "load_avg_1min",
    "settings",
    "cpu_model",
    "cpu_count",
    "python",
    "numpy",
    "numba",
    "tensorflow",
    "git_sha",
    "platform",
    "gpu_name",
    "gpu_driver_version",
    "gpu_memory_total_mib",
    "gpu_peak_mb",
    "tf_cuda_version",
)

_THREAD_ENV = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


# ---------------------------------------------------------------------------------- helpers


def _rss_mb() -> float:
    """Peak resident set of this process, MB.

    ``VmHWM`` of ``/proc/self/status`` (the high-water mark of this process image: it starts
    afresh at ``exec``), else ``ru_maxrss``, which Linux carries over from the parent across
    fork + exec and so can report the parent's peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _batches(n_train: int, batch: int, seed: int) -> Iterator[np.ndarray]:
    """The harness's batches: consecutive slices of ``epoch_order``, epoch after epoch."""
    from slide_bench.harness import epoch_order

    epoch = 0
    while True:
        order = epoch_order(n_train, seed, epoch)
        for start in range(0, n_train, batch):
            yield order[start : start + batch]
        epoch += 1


def _pcts(ms: np.ndarray) -> dict[str, float]:
    return {
        "ms_per_batch_median": float(np.median(ms)),
        "ms_per_batch_p10": float(np.percentile(ms, 10)),
        "ms_per_batch_p90": float(np.percentile(ms, 90)),
        "ms_per_batch_mean": float(ms.mean()),
    }


# ---------------------------------------------------------------------------------- worker


def _make_model(method: Method, threads: int, seed: int, sets: dict[str, Any],
                device: str = "cpu") -> tuple[Any, dict]:
    """The method's model from its registry settings and the overrides, via its plug-in.

    A TensorFlow method imports TensorFlow only here, in a worker of its own: its thread pools
    are fixed before the first op.
    """
    tree = nest({**method.overrides(), **sets})
    return method.plugin().build(tree, seed, threads, method.device_for(device))


def _worker(args: argparse.Namespace) -> int:
    """One measurement: a method at one thread count, in this process; writes its JSON row."""
    from slide_bench.data import load_npz

    method = get_method(args.worker)
    plugin = method.plugin()
    if args.phase_clock == "cpu" and hasattr(plugin, "use_cpu_phase_clock"):
        plugin.use_cpu_phase_clock()  # the bench's own wall clock is untouched
    threads = args.worker_threads
    sets = parse_sets(args.tf_sets if method.family == "tf" else args.sets)
    train = load_npz(Path(args.data_dir) / "train.npz")
    base_rss = _rss_mb()
    device = method.device_for(args.device)
    model, _ = _make_model(method, threads, args.seed, sets, device)
    result: dict[str, Any] = {"method": method.name, "threads": threads, "device": device,
                              "settings": sets, "phase_clock": args.phase_clock}
    if device == "gpu":
        prov = model.provenance()
        result.update({key: prov.get(src) for key, src in (
            ("gpu_name", "gpu_name"), ("gpu_driver_version", "gpu_driver_version"),
            ("gpu_memory_total_mib", "gpu_memory_total_mib"),
            ("tf_cuda_version", "tf_build_cuda_version"))})
    result.update(_provenance())  # at the start: the code this worker really ran
    batches = _start(model, method, train, args, result)
    wall, cpu = _timed_batches(model, batches, args.batches, result)
    stats = model.stats()
    result.update(_timing_columns(wall, cpu))
    result.update(plugin.bench_extras(model, stats, len(wall), args.batch_size, result))
    result["peak_rss_mb"] = _rss_mb()
    result["base_rss_mb"] = base_rss
    result["model_rss_mb"] = result["peak_rss_mb"] - base_rss
    result.setdefault("status", "ok")
    result["load_avg_1min"] = os.getloadavg()[0]
    if args.accuracy_seconds > 0:
        result.update(_accuracy_run(args, method, threads, sets, train))
    Path(args.result).write_text(json.dumps(result, default=float))
    return 0


def _start(model: Any, method: Method, train: Any, args: argparse.Namespace,
           result: dict[str, Any]) -> Iterator[np.ndarray]:
    """Everything before the timed batches: prepare (timed as start-up), the harness's warm-up,
    untimed training steps (SLIDE), ``--warmup`` batches; returns the timed batches' stream."""
    c0, t0 = time.process_time(), time.perf_counter()
    model.prepare(train)
    result["startup_seconds"] = time.perf_counter() - t0
    result["startup_cpu_seconds"] = time.process_time() - c0
    batches = _batches(train.n_points, args.batch_size, args.seed)
    t0 = time.perf_counter()
    model.warmup(next(batches))  # the harness warms up on the first batch, then trains on it
    batches = _batches(train.n_points, args.batch_size, args.seed)
    result["warmup_seconds"] = time.perf_counter() - t0
    # TensorFlow's cost per step does not depend on its weights: only SLIDE trains first
    trained = args.trained_steps if method.family == "slide" else 0
    if trained:
        own = _batches(train.n_points, args.batch_size, args.seed + 1)
        for step in range(1, trained + 1):
            model.train_batch(next(own))
            if step % 500 == 0 or step == trained:
                print(f"{method.name} t={args.worker_threads}: {step}/{trained} untimed "
                      "training steps", file=sys.stderr, flush=True)
    result["trained_steps"] = trained
    for _ in range(args.warmup):
        model.train_batch(next(batches))
    model.stats()  # reset counters: the profile covers the timed batches only
    # SLIDE's optimiser step of the first timed batch (warmup() trains a probe, not the model)
    result["first_timed_step"] = (trained + args.warmup + 1 if method.family == "slide"
                                  else math.nan)
    return batches


def _timed_batches(model: Any, batches: Iterator[np.ndarray], n: int,
                   result: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Wall and process CPU seconds of up to ``n`` training batches (stops at a diverged one)."""
    wall, cpu = [], []
    for _ in range(n):
        rows = next(batches)
        c0, t0 = time.process_time(), time.perf_counter()
        loss = model.train_batch(rows)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if not math.isfinite(loss):
            result["status"] = "diverged"
            break
    return wall, cpu


def _timing_columns(wall: list[float], cpu: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = _pcts(1e3 * np.asarray(wall))
    out["cpu_ms_per_batch_median"] = float(np.median(1e3 * np.asarray(cpu)))
    # CPU seconds per wall second over the timed batches: ~threads on an idle machine, less
    # when other processes take the cores (then wall times are inflated by the sharing)
    out["cpu_share"] = float(np.sum(cpu) / np.sum(wall))
    out["timed_batches"] = len(wall)
    return out


def _accuracy_run(args: argparse.Namespace, method: Method, threads: int,
                  sets: dict[str, Any], train: Any) -> dict[str, Any]:
    """Train a fresh model for ``--accuracy-seconds`` in the harness; return its curve."""
    from slide_bench.data import load_npz
    from slide_bench.harness import RunSettings, run

    test = load_npz(Path(args.data_dir) / "test.npz")
    model, config = _make_model(method, threads, args.seed, sets, args.device)
    settings = RunSettings(
        batch_size=args.batch_size, epochs=10**6, time_budget_s=args.accuracy_seconds,
        eval_every=args.eval_every, eval_points=min(2560, test.n_points), final_eval_points=0,
        seed=args.seed, checkpoint_every_s=1e9, dataset=args.preset, threads=threads,
    )
    out = Path(args.result).with_suffix(".curve.csv")
    res = run(model, train, test, settings, out, config)
    curve = [(float(r["train_seconds"]), float(r["p_at_1"])) for r in res.curve
             if r.get("eval_set") == "subset"]
    final = [float(r["p_at_1"]) for r in res.curve if r.get("eval_set") == "full"]
    return {"curve": curve, "final_p_at_1": final[-1] if final else math.nan}


# ---------------------------------------------------------------------------------- parent


def _spawn(method: Method, threads: int, args: argparse.Namespace, data_dir: Path,
           work: Path) -> dict[str, Any]:
    result = work / f"{method.name}-t{threads}.json"
    cmd = [sys.executable, "-m", "slide_bench.bench", "--worker", method.name,
           "--worker-threads", str(threads), "--data-dir", str(data_dir), "--result", str(result),
           "--batches", str(args.batches), "--warmup", str(args.warmup),
           "--batch-size", str(args.batch_size), "--seed", str(args.seed),
           "--preset", args.preset, "--eval-every", str(args.eval_every),
           "--phase-clock", args.phase_clock, "--trained-steps", str(args.trained_steps),
           "--device", args.device,
           "--accuracy-seconds", str(args.accuracy_seconds if threads == max(args.threads) else 0)]
    for item in args.sets:
        cmd += ["--set", item]
    for item in args.tf_sets:
        cmd += ["--tf-set", item]
    env = dict(os.environ)
    env.update({name: str(threads) for name in _THREAD_ENV})
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.trained_steps and method.family == "slide":
        print(f"  {method.name} t={threads}: training {args.trained_steps} untimed steps first",
              flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or not result.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        print(f"  {method.name} t={threads}: FAILED (exit {proc.returncode})\n    "
              + "\n    ".join(tail), file=sys.stderr)
        return {"method": method.name, "threads": threads,
                "device": method.device_for(args.device), "status": f"failed:{proc.returncode}"}
    out = json.loads(result.read_text())
    print(f"  {_label(out):11s} t={threads}: {out['ms_per_batch_median']:9.1f} ms/batch median "
          f"[p10 {out['ms_per_batch_p10']:.1f}, p90 {out['ms_per_batch_p90']:.1f}], "
          f"cpu {out['cpu_ms_per_batch_median']:.1f} ms, peak {out['peak_rss_mb']:.0f} MB, "
          f"start-up {out['startup_seconds']:.1f} s  ({elapsed:.0f} s wall)", flush=True)
    return out


def _time_to(curve: Sequence[Sequence[float]], target: float) -> float:
    """Training seconds of the curve's first evaluation at or above ``target`` (NaN if never):
    the pipeline's rule, :func:`slide_bench.report.series.time_to_target`."""
    from slide_bench.report.series import time_to_target

    points = np.asarray(curve, dtype=float).reshape(-1, 2)
    return time_to_target(points[:, 0], points[:, 1], target)


def _goal_rows(rows: list[dict[str, Any]], threads: list[int],
               goals: Goals | None = None) -> list[tuple[str, float, str]]:
    """(goal, measured value, PASS/FAIL/n.a.) for each goal (default: :func:`load_goals`)."""
    goals = goals or load_goals()
    by = {(r["method"], r["threads"]): r for r in rows if r.get("status") == "ok"}
    slide = "slide"
    top = max(threads)
    out = []

    def ms(method: str, t: int) -> float:
        row = by.get((method, t))
        return row["ms_per_batch_median"] if row else math.nan

    def verdict(name: str, value: float) -> str:
        if not math.isfinite(value) and value != math.inf:
            return "n/a"
        limit, op, _ = goals.targets[name]
        ok = {">=": value >= limit, "<=": value <= limit, ">": value > limit}[op]
        return "PASS" if ok else "FAIL"

    values = {
        "slide_vs_tf_full": ms("tf-full", top) / ms(slide, top),
        "slide_vs_cpp": goals.cpp_ms_per_batch[2] / ms(slide, 2) if 2 in threads else math.nan,
        "slide_peak_rss_gb": max((r["peak_rss_mb"] / 1024 for k, r in by.items()
                                  if k[0] == slide), default=math.nan),
        "slide_startup_s": min((r["startup_seconds"] for k, r in by.items() if k[0] == slide),
                               default=math.nan),
        "slide_thread_speedup": ms(slide, 1) / ms(slide, 2) if {1, 2} <= set(threads)
        else math.nan,
    }
    # the pipeline's headline rule: 90% of the best subset P@1 any method reached, the peer's
    # time over SLIDE's (inf when only SLIDE got there)
    from slide_bench.report.headline import level_targets, tta_ratio

    curves = {m: by[(m, top)].get("curve", []) for m in ("slide", "tf-full", "tf-sampled")
              if (m, top) in by}
    best = [max((p1 for _, p1 in c), default=math.nan) for c in curves.values()]
    level = goals.headline_level
    target = level_targets(best, [level])[level]
    if math.isfinite(target):
        tta = {m: _time_to(c, target) for m, c in curves.items()}
        for row in rows:
            if row.get("method") in tta and row.get("threads") == top:
                row["tta_seconds"] = tta[row["method"]]
        for goal, peer in (("tta_vs_tf_full", "tf-full"), ("tta_vs_tf_sampled", "tf-sampled")):
            values[goal] = (tta_ratio(tta[peer], tta.get(slide, math.nan)) if peer in tta
                            else math.nan)
    else:
        values["tta_vs_tf_full"] = values["tta_vs_tf_sampled"] = math.nan
    for name, value in values.items():
        out.append((name, value, verdict(name, value)))
    # a speed-up needs the cores: when the 1-thread worker got well under one core or the
    # 2-thread worker well under two (other processes on the machine), the ratio is noise
    share1 = by.get((slide, 1), {}).get("cpu_share", 1.0)
    share2 = by.get((slide, 2), {}).get("cpu_share", 2.0)
    if share1 < 0.8 or share2 < 1.6:
        out = [(n, v, "NOISY" if n == "slide_thread_speedup" and d != "n/a" else d)
               for n, v, d in out]
    return out


def _provenance() -> dict[str, Any]:
    from slide_bench.runlog import provenance

    prov = provenance({}, 0, "cpu")
    versions = prov.get("versions", {})
    return {
        "cpu_model": prov.get("cpu_model"),
        "cpu_count": prov.get("cpu_count"),
        "python": prov.get("python"),
        "numpy": versions.get("numpy"),
        "numba": versions.get("numba"),
        "tensorflow": versions.get("tensorflow") or versions.get("tensorflow-cpu"),
        "git_sha": prov.get("git_sha"),
        "platform": prov.get("platform"),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([_fmt(row.get(c)) for c in CSV_COLUMNS])


def _label(row: dict[str, Any]) -> str:
    """Method name as printed: ``tf-full@gpu`` for a GPU row."""
    return row["method"] + ("@gpu" if row.get("device") == "gpu" else "")


def _print_tables(rows: list[dict[str, Any]], goals: list[tuple[str, float, str]],
                  bandwidth: float, row_rates: dict[int, float], targets: Goals) -> None:
    print("\nmethod       thr  ms/batch med [p10, p90]        cpu ms  amortised  peak MB  "
          "start-up s (cpu s)  cpu share")
    for r in rows:
        if r.get("status") != "ok":
            print(f"{_label(r):12s} {r['threads']:>3}  {r.get('status')}")
            continue
        print(f"{_label(r):12s} {r['threads']:>3}  {r['ms_per_batch_median']:9.1f} "
              f"[{r['ms_per_batch_p10']:8.1f}, {r['ms_per_batch_p90']:8.1f}]  "
              f"{r['cpu_ms_per_batch_median']:8.1f}  {r['ms_per_batch_amortised']:9.1f}  "
              f"{r['peak_rss_mb']:7.0f}  {r['startup_seconds']:8.1f} "
              f"({r.get('startup_cpu_seconds', math.nan):6.1f})  "
              f"{r.get('cpu_share', math.nan):6.2f}")
    slide_rows = [r for r in rows if r.get("status") == "ok" and "t_forward_ms" in r]
    if slide_rows:
        print("\nSLIDE profile, ms per timed batch (engine phase timers; clock: "
              f"{rows[0].get('phase_clock', 'wall')}); traffic: output layer, per batch")
        print("method       thr   hash  forward backward  update  tables  active  unique  "
              "rebuild s  traffic GB  at row rate ms")
        for r in slide_rows:
            gb = r.get("traffic_unique_gb", math.nan)
            rate = row_rates.get(r["threads"], math.nan)
            print(f"{r['method']:12s} {r['threads']:>3} {r['t_hash_ms']:6.1f} "
                  f"{r['t_forward_ms']:8.1f} {r['t_backward_ms']:8.1f} {r['t_update_ms']:7.1f} "
                  f"{r['t_tables_ms']:7.1f} {r['active_mean']:7.0f} "
                  f"{r.get('unique_active', math.nan):7.0f} "
                  f"{r.get('rebuild_seconds', math.nan):9.2f}  {gb:10.2f}  "
                  f"{1e3 * gb / rate:14.1f}")
    tf_rows = [r for r in rows if r.get("status") == "ok" and "t_host_ms" in r]
    if tf_rows:
        print("\nTensorFlow split, ms per timed batch: host-side batch preparation vs step")
        for r in tf_rows:
            print(f"{_label(r):12s} {r['threads']:>3}  host {r['t_host_ms']:7.2f}  "
                  f"step {r['t_step_ms']:9.1f}")
    print(f"\nmemory: streaming copy {bandwidth:.1f} GB/s (read+write); random-row Adam step "
          + ", ".join(f"{rate:.1f} GB/s at {t} thread(s)" for t, rate in row_rates.items())
          + f"; memory-bound speed-up ceiling {_row_speedup(row_rates):.2f}")
    print("\ngoal                    value      target  verdict")
    for name, value, verdict in goals:
        limit, op, text = targets.targets[name]
        print(f"{name:22s} {value:9.3g}  {op}{limit:<6g}  {verdict:5s}  {text}")


def _row_speedup(row_rates: dict[int, float]) -> float:
    """Random-row update rate at the most threads over its rate at 1 thread (nan without both)."""
    top = max(row_rates, default=1)
    return row_rates[top] / row_rates[1] if 1 in row_rates and top > 1 else math.nan


def _parent(args: argparse.Namespace) -> int:
    methods = [get_method(m.strip()) for m in args.methods.split(",") if m.strip()]
    spec = _spec(args)
    targets = load_goals(args.goals)
    if args.device == "gpu":
        # before any data or timing: a GPU bench without a GPU stops here with exit 3 and why
        for plugin in {m.plugin_module: m.plugin() for m in methods if m.takes_device}.values():
            plugin.check_device("gpu")
    print(f"bench: preset {args.preset}: {spec.n_train} train / {spec.n_test} test points, "
          f"D={spec.n_features}, L={spec.n_labels}; methods {[m.name for m in methods]}, "
          f"threads {args.threads}",
          flush=True)
    bandwidth = measure_bandwidth()
    # the output layer's shape: its rows and a batch's worth of distinct rows touched
    row_rates = measure_row_update(sorted(args.threads), n_rows=spec.n_labels,
                                   touched=max(1, min(2**16, spec.n_labels // 2)))
    print("  machine: streaming copy " f"{bandwidth:.1f} GB/s; random-row Adam step "
          + ", ".join(f"{rate:.1f} GB/s at {t} thread(s)" for t, rate in row_rates.items()),
          flush=True)
    rows = _measure(args, spec, methods)
    prov = _provenance()
    for row in rows:
        for key, value in prov.items():
            row.setdefault(key, value)
        row.update(
            preset=args.preset, n_train=spec.n_train, n_features=spec.n_features,
            n_labels=spec.n_labels, batch_size=args.batch_size, warmup_batches=args.warmup,
            mem_bandwidth_gbs=bandwidth,
            row_update_gbs=row_rates.get(row.get("threads"), math.nan),
            machine_row_speedup=_row_speedup(row_rates),
        )
    goals = _goal_rows(rows, args.threads, targets)
    _write_csv(Path(args.out), rows)
    _print_tables(rows, goals, bandwidth, row_rates, targets)
    goals_path = _write_goals(Path(args.out).with_suffix(".goals.csv"), goals, targets)
    _write_curves(Path(args.out).with_suffix(".curves.csv"), rows)
    print(f"\nwrote {args.out} and {goals_path}")
    return 0 if all(r.get("status") == "ok" for r in rows) else 1


def _spec(args: argparse.Namespace) -> Any:
    """The synthetic spec of ``--preset`` with ``--train-points`` / ``--test-points``."""
    from slide_bench.data.synthetic import PRESETS, resolve_spec
    from slide_bench.errors import ConfigError

    if args.preset not in PRESETS:
        raise ConfigError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    overrides = {}
    if args.train_points:
        overrides["n_train"] = str(args.train_points)
    if args.test_points:
        overrides["n_test"] = str(args.test_points)
    return resolve_spec(args.preset, overrides)


def _measure(args: argparse.Namespace, spec: Any, methods: list[Method]) -> list[dict[str, Any]]:
    """Generate the data once, then one worker per method and thread count; their rows."""
    from slide_bench.data import save_npz
    from slide_bench.data.synthetic import generate

    with tempfile.TemporaryDirectory(prefix="slide-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        train, test = generate(spec, args.seed)
        save_npz(train, work / "train.npz")
        save_npz(test, work / "test.npz")
        del train, test
        print(f"  data generated in {time.perf_counter() - t0:.1f} s", flush=True)
        return [_spawn(method, threads, args, work, work)
                for method in methods for threads in args.threads]


def _write_goals(path: Path, goals: list[tuple[str, float, str]], targets: Goals) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["goal", "value", "op", "target", "verdict", "description"])
        for name, value, verdict in goals:
            limit, op, text = targets.targets[name]
            writer.writerow([name, _fmt(float(value)), op, limit, verdict, text])
    return path


def _write_curves(path: Path, rows: list[dict[str, Any]]) -> None:
    """The accuracy runs' curves (``--accuracy-seconds``), if any."""
    curves = [(r["method"], r["threads"], sec, p1) for r in rows for sec, p1 in r.get("curve", [])]
    if curves:
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["method", "threads", "train_seconds", "p_at_1"])
            writer.writerows(curves)
        print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m slide_bench.bench``."""
    p = argparse.ArgumentParser(
        prog="python -m slide_bench.bench",
        description="Steady-state ms/batch, peak memory and start-up of SLIDE and the "
        "TensorFlow baselines on the same batches, one subprocess per method and thread count.",
    )
    p.add_argument("--preset", default="tiny", help="synthetic preset (slide_bench.data)")
    p.add_argument("--train-points", type=int, default=0,
                   help="training points generated (default: the preset's)")
    p.add_argument("--test-points", type=int, default=0,
                   help="test points generated (default: the preset's, capped at 2000)")
    p.add_argument("--threads", default=[1, 2],
                   type=lambda s: sorted({int(x) for x in s.split(",")}),
                   help="comma-separated thread counts (default 1,2)")
    p.add_argument("--batches", type=int, default=30, help="timed batches per method")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed training batches after the harness warm-up")
    p.add_argument("--trained-steps", type=int, default=0,
                   help="SLIDE methods: untimed training steps before the timed batches (the "
                   "steady state of a training run rather than a fresh network; TF ignores it)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated, from {', '.join(method_names())}")
    add_set_argument(p, "SLIDE config override (as python -m slide_engine train --set); "
                     "repeatable")
    add_set_argument(p, "TF baseline config override (BaselineConfig keys); repeatable",
                     flag="--tf-set", dest="tf_sets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accuracy-seconds", type=float, default=0.0,
                   help="also train each method this many seconds (max threads) and report "
                   "time to the goals' headline level (90%%) of the best P@1 any method reached "
                   "(0 = skip)")
    p.add_argument("--eval-every", type=int, default=50,
                   help="batches between evaluations in the accuracy run")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="device of the TensorFlow methods (SLIDE runs on the CPU); gpu without "
                   "a visible GPU exits 3")
    p.add_argument("--phase-clock", choices=("wall", "cpu"), default="wall",
                   help="clock of SLIDE's phase profile: wall (the engine's own) or process CPU "
                   "time (steadier when other processes share the cores)")
    p.add_argument("--out", default="bench.csv", help="CSV to write (goals beside it)")
    p.add_argument("--goals", default=str(GOALS_FILE),
                   help="goals and reference figures (YAML; default: config/goals.yaml)")
    # internal: one worker per (method, threads)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--debug", action="store_true", help="tracebacks on errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench (or, with the internal ``--worker``, one measurement); return the status."""
    args = build_parser().parse_args(argv)
    if (args.batches < 1 or args.warmup < 0 or args.batch_size < 1 or min(args.threads) < 1
            or args.trained_steps < 0):
        from slide_bench.errors import ConfigError

        raise ConfigError("--batches, --batch-size and --threads must be >= 1, --warmup and "
                          "--trained-steps >= 0")
    if args.worker:
        return _worker(args)
    if not args.test_points and args.preset != "tiny":
        from slide_bench.data.synthetic import PRESETS

        args.test_points = min(PRESETS[args.preset].n_test, 2000)
    return _parent(args)


if __name__ == "__main__":
    from slide_bench.cli import main_guard

    main_guard(main)()
