"""The one training loop every method runs in: batch order, clock, evaluation, checkpoints.

SLIDE and the TensorFlow baselines implement :class:`Trainable`; :func:`run` drives them, so all
methods see the same batches in the same order, are evaluated on the same seeded test subset with
the same metric code, and are timed by the same clock. The clock (``train_seconds``) accumulates
``perf_counter`` stamps around :meth:`Trainable.train_batch` only: building the network, JIT
warm-up, parsing and evaluation are excluded, as in the SLIDE paper (and unlike its published
TensorFlow timer, which included feeding).

A run is resumable: at evaluation points, once ``checkpoint_every_s`` wall seconds have passed,
the model state and the loop position are checkpointed atomically. Re-running the same command
reloads the checkpoint, cuts the curve back to it and continues; an unreadable checkpoint is
reported and the run starts again from scratch.

:func:`run` sets a run up and hands it to the timed loop (``_train``), a few lines over named
parts: the stop rule (``_StopRule``: budget, iteration cap, divergence, and which steps are
evaluation points), the record (``_Record``: curve rows and the sidecar) and the checkpoints
(``_Checkpoints``: resume at the start, save at evaluation points).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from slide_bench.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from slide_bench.data.xcdata import XCData
from slide_bench.errors import ConfigError, SuiteError
from slide_bench.metrics import precision_at_k
from slide_bench.runlog import CurveLog, provenance, read_sidecar, write_sidecar

__all__ = ["OutputError", "RunResult", "RunSettings", "Trainable", "epoch_order", "run"]

log = logging.getLogger("slide_bench.harness")

_KS = (1, 3, 5)
_EVAL_SEED_SALT = 7_919  # keeps the evaluation subset independent of the batch order


class OutputError(SuiteError):
    """The output folder cannot be written (missing, read-only, or full)."""


@runtime_checkable
class Trainable(Protocol):
    """What a method must provide to be trained and timed by :func:`run`.

    Attributes
    ----------
    method : str
        Method name written in every curve row (e.g. ``"slide"``, ``"tf-full"``).
    device : str
        The device actually used (``"cpu"`` or ``"gpu"``).
    """

    method: str
    device: str

    def prepare(self, train: XCData) -> None:
        """Build the model for ``train`` (untimed; recorded as start-up)."""

    def warmup(self, rows: np.ndarray) -> None:
        """Compile/trace on one batch of train rows ``(batch,)`` without changing the state."""

    def train_batch(self, rows: np.ndarray) -> float:
        """One optimiser step on train rows ``(batch,)``; return the batch's mean loss (timed)."""

    def predict_topk(self, data: XCData, k: int) -> np.ndarray:
        """Top-``k`` label ids ``(n, k)`` int32 from a dense forward over all labels."""

    def stats(self) -> dict[str, float]:
        """Extra curve columns describing the work since the previous call."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every array needed to resume bit-identically (weights, optimiser, hashes, RNG)."""

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a state produced by :meth:`state_dict`."""

    def is_finite(self) -> bool:
        """Whether every weight is finite."""


@dataclass
class RunSettings:
    """How long to train, how often to evaluate and checkpoint.

    Every field can be set from a config file's ``run:`` section or ``--set run.<field>=...``.
    """

    #: samples per optimiser step (the paper's 128)
    batch_size: int = 128
    #: passes over the training set
    epochs: int = 1
    #: stop once this many training seconds have accumulated (None = no budget)
    time_budget_s: float | None = None
    #: evaluate every this many iterations (and at the end of every epoch); None: not by count
    eval_every: int | None = 50
    #: evaluate whenever this many more training seconds have accumulated (None: never), so
    #: methods whose steps differ 10x in cost are measured at the same training times; when set,
    #: epoch ends are no longer evaluation points
    eval_every_s: float | None = None
    #: size of the seeded test subset used during training (the paper: 20 batches of 128)
    eval_points: int = 2560
    #: test points scored at the end; 0 = the whole test set
    final_eval_points: int = 0
    #: seeds the batch order, the evaluation subset and the model
    seed: int = 0
    #: minimum wall seconds between checkpoints (checkpoints are taken at evaluation points)
    checkpoint_every_s: float = 60.0
    #: stop after this many iterations (None = run the epochs); for benchmarks and tests
    max_iterations: int | None = None
    #: also score with hashing at inference when the method supports it (extra columns)
    eval_lsh: bool = False
    #: dataset name written in every curve row
    dataset: str = "unknown"
    #: threads the method was given (recorded; the method applies it)
    threads: int = 1


@dataclass
class RunResult:
    """How a run ended."""

    status: str  # done | diverged | timeout
    stop_reason: str
    iterations: int
    train_seconds: float
    curve: list[dict[str, Any]] = field(default_factory=list)


def epoch_order(n_train: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the ``n_train`` training points.

    Returns
    -------
    ndarray, shape (n_train,), int64
        A permutation, identical on every platform for the same ``(seed, epoch)``.
    """
    return np.random.default_rng([seed, epoch]).permutation(n_train)


def eval_subset(n_test: int, n_points: int, seed: int) -> np.ndarray:
    """Seeded, sorted subset of ``min(n_points, n_test)`` test rows; all rows if ``n_points<=0``."""
    if n_points <= 0 or n_points >= n_test:
        return np.arange(n_test)
    rng = np.random.default_rng([seed, _EVAL_SEED_SALT])
    return np.sort(rng.choice(n_test, size=n_points, replace=False))


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OutputError(
            f"cannot write to output folder {folder} ({err.strerror or err}); "
            "choose another --out or free space; nothing was changed"
        ) from err


def _check_datasets(train: XCData, test: XCData) -> None:
    if train.n_points == 0 or test.n_points == 0:
        which = "training" if train.n_points == 0 else "test"
        raise ConfigError(f"the {which} set has no points: check the dataset files")
    if (test.n_features, test.n_labels) != (train.n_features, train.n_labels):
        raise ConfigError(
            f"train has {train.n_features} features / {train.n_labels} labels but test has "
            f"{test.n_features} / {test.n_labels}: they must come from the same dataset"
        )


class _Loop:
    """Mutable position of a run; what a checkpoint stores besides the model state."""

    def __init__(self) -> None:
        self.epoch = 0
        self.batch = 0  # next batch index within the epoch
        self.iteration = 0
        self.train_seconds = 0.0
        self.loss_sum = 0.0
        self.loss_count = 0
        self.eval_mark = 0  # training-time evaluations done (eval_every_s)

    def meta(self) -> dict[str, Any]:
        return dict(vars(self))

    def restore(self, meta: Mapping[str, Any]) -> None:
        for key in vars(self):
            setattr(self, key, type(getattr(self, key))(meta[key]))

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def add_loss(self, loss: float, n_batches: int) -> bool:
        """Count a finite batch loss; roll over to the next epoch after its last batch.

        Returns whether the batch just trained was the last of its epoch.
        """
        self.loss_sum += loss
        self.loss_count += 1
        end_of_epoch = self.batch == n_batches
        if end_of_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        return end_of_epoch


class _StopRule:
    """When a run stops (and why), and which steps are evaluation points."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.status, self.reason = "done", f"completed {settings.epochs} epochs"
        self.stop = False

    def diverged(self, reason: str) -> None:
        self._stop("diverged", reason)

    def _stop(self, status: str, reason: str) -> None:
        self.status, self.reason, self.stop = status, reason, True

    def check_limits(self, loop: _Loop) -> None:
        """Stop at the time budget or the iteration cap (the cap's reason wins when both)."""
        budget, max_it = self.settings.time_budget_s, self.settings.max_iterations
        if budget is not None and loop.train_seconds >= budget:
            self._stop("timeout", f"time budget of {budget:g} s reached")
        if max_it is not None and loop.iteration >= max_it:
            self._stop("done", f"reached {max_it} iterations")

    def evaluates_now(self, loop: _Loop, end_of_epoch: bool) -> bool:
        """Whether this step is an evaluation point (advances the training-time mark)."""
        every, every_s = self.settings.eval_every, self.settings.eval_every_s
        by_count = bool(every) and loop.iteration % every == 0
        by_time = every_s is not None and loop.train_seconds >= (loop.eval_mark + 1) * every_s
        if by_time:
            loop.eval_mark = int(loop.train_seconds // every_s)
        # epoch ends are evaluation points of the count cadence only: with a time cadence a
        # method with cheap steps would otherwise be evaluated many times more often
        at_epoch_end = end_of_epoch and every_s is None
        return by_count or by_time or at_epoch_end or self.stop


@dataclass
class _Record:
    """What a run writes besides its checkpoint: curve rows and the sidecar."""

    model: Trainable
    settings: RunSettings
    loop: _Loop
    curve: CurveLog
    sidecar: Path
    prov: dict[str, Any]
    full_config: dict[str, Any]
    optimizer: dict[str, Any]
    eval_data: XCData | None = None  # the seeded test subset of the training-time rows
    startup_seconds: float = 0.0
    resumed: bool = False

    def row(self, eval_set: str, data: XCData) -> None:
        """Evaluate on ``data`` and append the curve row (loss: mean since the previous row)."""
        loop, settings, model = self.loop, self.settings, self.model
        row: dict[str, Any] = {
            "method": model.method, "dataset": settings.dataset, "device": model.device,
            "threads": settings.threads, "seed": settings.seed, "epoch": loop.epoch,
            "iteration": loop.iteration, "train_seconds": loop.train_seconds,
            "eval_set": eval_set, "eval_points": data.n_points,
        }
        row["loss"] = loop.loss_sum / loop.loss_count if loop.loss_count else math.nan
        loop.loss_sum, loop.loss_count = 0.0, 0
        t0 = time.perf_counter()
        row.update(_evaluate(model, data, settings))
        sampling_stats = getattr(model, "sampling_stats", None)
        if sampling_stats is not None:  # what a sampled method's active sets hold (subset)
            row.update(sampling_stats(self.eval_data, settings.batch_size))
        row["eval_seconds"] = time.perf_counter() - t0
        row.update(model.stats())
        self.curve.append(row)
        log.info("%s %s epoch %d it %d  train %.1fs  P@1 %.4f  loss %.4f", model.method,
                 settings.dataset, loop.epoch, loop.iteration, loop.train_seconds,
                 row["p_at_1"], row["loss"])

    def write_sidecar(self, status: str, reason: str) -> None:
        write_sidecar(self.sidecar, {
            "status": status,
            "stop_reason": reason,
            "iterations": self.loop.iteration,
            "train_seconds": self.loop.train_seconds,
            "startup_seconds": self.startup_seconds,
            "resumed": self.resumed,
            "optimizer": self.optimizer,
            "provenance": self.prov,
            "config": self.full_config,
        })


class _Checkpoints:
    """The run's checkpoint: resumed from at the start, written at evaluation points."""

    def __init__(self, path: Path, record: _Record) -> None:
        self.path = path
        self.record = record
        self.last = time.monotonic()

    def resume(self, model: Trainable, train: XCData) -> bool:
        """Load the checkpoint into ``model`` and the loop; cut the curve back to it.

        An unusable checkpoint is reported, deleted, and the run starts from scratch (the model
        prepared afresh, the loop at zero). Returns whether the run resumed.
        """
        record, loop = self.record, self.record.loop
        if not self.path.exists():
            return False
        try:
            state, meta = load_checkpoint(self.path)
            if meta.get("config_hash") != record.prov["config_hash"]:
                raise CheckpointError(f"checkpoint {self.path} belongs to another configuration")
            model.load_state_dict(state)
            loop.restore(meta["loop"])
            record.curve.load(up_to_iteration=loop.iteration)
            # a checkpoint follows its evaluation row: without that row the curve would have a gap
            rows = record.curve.rows
            if not rows or int(rows[-1]["iteration"]) != loop.iteration:
                raise CheckpointError(
                    f"curve {record.curve.path} does not reach the checkpoint's iteration "
                    f"{loop.iteration}"
                )
        except (CheckpointError, KeyError, ValueError, TypeError) as err:
            log.warning("ignoring checkpoint: %s; starting from scratch", err)
            self.path.unlink(missing_ok=True)
            model.prepare(train)
            loop.reset()
            return False
        log.info("resumed from %s at iteration %d", self.path, loop.iteration)
        return True

    def maybe_save(self) -> None:
        """Checkpoint once ``checkpoint_every_s`` wall seconds have passed since the last one."""
        record = self.record
        if time.monotonic() - self.last < record.settings.checkpoint_every_s:
            return
        meta = {"config_hash": record.prov["config_hash"], "loop": record.loop.meta()}
        save_checkpoint(self.path, record.model.state_dict(), meta)
        record.write_sidecar("running", "checkpointed")
        self.last = time.monotonic()


def _evaluate(model: Trainable, data: XCData, settings: RunSettings) -> dict[str, float]:
    k = min(max(_KS), data.n_labels)
    topk = model.predict_topk(data, k)
    p = precision_at_k(topk, data.y_indptr, data.y_indices, ks=[x for x in _KS if x <= k])
    row = {f"p_at_{x}": p.get(x, math.nan) for x in _KS}
    predict_lsh = getattr(model, "predict_topk_lsh", None)
    if settings.eval_lsh and predict_lsh is not None:
        p_lsh = precision_at_k(predict_lsh(data, k), data.y_indptr, data.y_indices, ks=[1])
        row["p_at_1_lsh"] = p_lsh[1]
    return row


def run(
    model: Trainable,
    train: XCData,
    test: XCData,
    settings: RunSettings,
    out_csv: str | os.PathLike[str],
    config: Mapping[str, Any],
    checkpoint_path: str | os.PathLike[str] | None = None,
    extra_provenance: Mapping[str, Any] | None = None,
) -> RunResult:
    """Train ``model`` on ``train``, evaluating on ``test``, writing the curve and its sidecar.

    Parameters
    ----------
    model : Trainable
        The method to train (not yet prepared).
    train, test : XCData
        Training and test sets (already shuffled).
    settings : RunSettings
        Length, evaluation and checkpoint cadence.
    out_csv : path-like
        Curve CSV; the sidecar is the same path with suffix ``.json``.
    config : mapping
        The method's full configuration (recorded, hashed, and checked on resume).
    checkpoint_path : path-like, optional
        Where to keep the checkpoint; default ``<out_csv>.ckpt.npz``.
    extra_provenance : mapping, optional
        Method-specific provenance (e.g. TensorFlow build info, device name).

    Returns
    -------
    RunResult
        Status, reason, iterations and training seconds.
    """
    _check_datasets(train, test)
    out_csv = Path(out_csv)
    ckpt = Path(checkpoint_path) if checkpoint_path else out_csv.with_suffix(".ckpt.npz")
    _check_writable(out_csv.parent)
    _check_writable(ckpt.parent)
    record = _new_record(model, settings, out_csv, config, extra_provenance)
    finished = _finished_run(record, ckpt)
    if finished is not None:
        return finished
    t_start = time.perf_counter()
    model.prepare(train)
    record.startup_seconds = time.perf_counter() - t_start
    record.eval_data = test.take(eval_subset(test.n_points, settings.eval_points, settings.seed))
    final_rows = eval_subset(test.n_points, settings.final_eval_points, settings.seed)
    final_data = test if len(final_rows) == test.n_points else test.take(final_rows)
    checkpoints = _Checkpoints(ckpt, record)
    record.resumed = checkpoints.resume(model, train)
    if not record.resumed:
        record.curve.rows = []
    model.warmup(epoch_order(train.n_points, settings.seed, 0)[: settings.batch_size])
    if not record.resumed:
        record.row("subset", record.eval_data)
    record.write_sidecar("running", "started")
    rule = _train(model, train, record, checkpoints)
    if rule.status != "diverged":
        record.row("full", final_data)
    else:
        log.warning("%s %s: %s", model.method, settings.dataset, rule.reason)
    record.write_sidecar(rule.status, rule.reason)
    ckpt.unlink(missing_ok=True)
    loop = record.loop
    return RunResult(rule.status, rule.reason, loop.iteration, loop.train_seconds,
                     record.curve.rows)


def _train(model: Trainable, train: XCData, record: _Record,
           checkpoints: _Checkpoints) -> _StopRule:
    """The timed loop: batches of the seeded epoch orders from the loop's position until the
    stop rule says so; evaluation rows and checkpoints at the evaluation points."""
    settings, loop = record.settings, record.loop
    size = settings.batch_size
    n_batches = max(1, math.ceil(train.n_points / size))
    rule = _StopRule(settings)
    while loop.epoch < settings.epochs and not rule.stop:
        order = epoch_order(train.n_points, settings.seed, loop.epoch)
        while loop.batch < n_batches and not rule.stop:
            rows = order[loop.batch * size : (loop.batch + 1) * size]
            t0 = time.perf_counter()
            loss = model.train_batch(rows)  # the only timed call
            loop.train_seconds += time.perf_counter() - t0
            loop.batch += 1
            loop.iteration += 1
            if not math.isfinite(loss):
                rule.diverged(f"non-finite loss at iteration {loop.iteration}")
                break
            end_of_epoch = loop.add_loss(loss, n_batches)
            rule.check_limits(loop)
            if rule.evaluates_now(loop, end_of_epoch):
                if not model.is_finite():
                    rule.diverged(f"non-finite weights at iteration {loop.iteration}")
                    break
                record.row("subset", record.eval_data)
                if not rule.stop:
                    checkpoints.maybe_save()
            if end_of_epoch:
                break
    return rule


def _new_record(model: Trainable, settings: RunSettings, out_csv: Path,
                config: Mapping[str, Any],
                extra_provenance: Mapping[str, Any] | None) -> _Record:
    full_config = {"run": asdict(settings), **dict(config)}
    prov = provenance(full_config, settings.threads, model.device)
    # the optimiser every method of a comparison must share (its mode, step size and constants)
    optimizer = {k: config[k] for k in ("adam", "lr", "beta1", "beta2", "eps") if k in config}
    prov.update(dict(extra_provenance or {}))
    return _Record(model, settings, _Loop(), CurveLog(out_csv), out_csv.with_suffix(".json"),
                   prov, full_config, optimizer)


def _finished_run(record: _Record, ckpt: Path) -> RunResult | None:
    """The result of a run that already finished with this configuration, or None."""
    previous = read_sidecar(record.sidecar)
    done = previous and previous.get("status") in ("done", "diverged", "timeout")
    if not done or not record.curve.path.exists():
        return None
    if previous.get("provenance", {}).get("config_hash") != record.prov["config_hash"]:
        return None
    log.info("%s already finished (%s); nothing to do", record.curve.path, previous["status"])
    ckpt.unlink(missing_ok=True)  # left by a kill between the final sidecar and cleanup
    record.curve.load()
    return RunResult(
        previous["status"],
        previous.get("stop_reason", ""),
        int(previous.get("iterations", 0)),
        float(previous.get("train_seconds", 0.0)),
        record.curve.rows,
    )
