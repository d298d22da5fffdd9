"""SlideNetwork: the SLIDE engine as a :class:`~slide_bench.harness.Trainable`.

The class owns the arrays, validates input, sets numba's thread count (and restores it), times
the phases of a batch and calls the kernels; its only arithmetic is the BLAS product that scores
all labels at evaluation.

One training step (:meth:`SlideNetwork.train_batch`) runs layer by layer over the whole batch:

1. *hash* (sampled layers): hash each sample's input to the layer and pick its active neurons
   (output layer: the sample's labels first, then the LSH candidates); for a layer trained
   neuron-major (``accumulate="rows"``, see :mod:`~slide_engine.engine.rowwise`) also group the
   batch's (sample, neuron) pairs by neuron;
2. *forward*: the active neurons' values (ReLU in hidden layers, logits at the output; per
   distinct row for a neuron-major layer), then the softmax over each sample's active output
   neurons and ``delta = p - t``;
3. *backward*: gradient rows accumulated in place without locks (HOGWILD at >1 thread). A dense
   layer fed by a dense layer is done row by row instead (one worker per row): every sample
   touches every row there, so HOGWILD would collide on every sample, not rarely. A neuron-major
   layer's pass per distinct row computes its gradient and delta and applies its Adam step at
   once (so its update is timed here, as backward);
4. *update*: Adam over the other layers' rows, lazy (rows stamped this step) or dense (all rows);
5. *tables*: scheduled rebuild / redraw of each sampled layer's hash tables.

Samples without labels contribute neither loss nor gradient (their delta is zero, no row is
touched); the returned loss is the mean over the batch's labelled samples.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from os import PathLike
from typing import Any

import numba
import numpy as np
import threadpoolctl

from slide_bench.checkpoint import load_checkpoint, save_checkpoint
from slide_bench.cli import from_dict
from slide_bench.data import XCData
from slide_bench.errors import ConfigError
from slide_bench.harness import RunResult, RunSettings
from slide_bench.harness import run as harness_run
from slide_bench.metrics import precision_at_k
from slide_engine.engine.adam import bias_correction
from slide_engine.engine.buffers import BatchBuffers
from slide_engine.engine.config import LayerConfig, OutputConfig, SlideConfig
from slide_engine.engine.inference import topk_dense, topk_sparse
from slide_engine.engine.kernels import PARALLEL, SERIAL, KernelSet, scatter_bias_grad
from slide_engine.engine.params import NO_BIAS, LayerParams, init_layer
from slide_engine.engine.rowwise import pair_buffers
from slide_engine.engine.sampling import LayerSampler
from slide_engine.lsh import SelectScratch
from slide_engine.lsh.selection import POLICY_RANDOM, POLICY_UNION

__all__ = ["SlideNetwork"]

_PHASES = ("hash", "forward", "backward", "update", "tables")

_MONGOOSE_COLUMNS = ("checks", "reinserts", "fits", "t_sched", "t_fit")

#: curve columns of :meth:`SlideNetwork.sampling_stats` (evaluation rows, untimed)
SAMPLING_COLUMNS = ("recall_top1", "recall_top10", "share_tables", "share_labels",
                    "share_topup")


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine similarity over the distinct pairs of rows of ``x`` that are not all zero.

    The output layer's hash queries are the batch's last hidden activations: when this is near 1
    every sample hashes to nearly the same buckets, so the batch shares one active set (SLIDE's
    collapsed phase, docs/performance.md). Costs O(B * d).

    Parameters
    ----------
    x : numpy.ndarray
        float (B, d), one query per row.

    Returns
    -------
    float
        ``mean_{i != j} cos(x_i, x_j)`` over the nonzero rows; NaN with fewer than two.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    keep = norms > 0.0
    n = int(np.count_nonzero(keep))
    if n < 2:
        return float("nan")
    total = (x[keep] / norms[keep, None]).sum(axis=0, dtype=np.float64)
    return float((total @ total - n) / (n * (n - 1)))


@functools.cache
def _blas_controller() -> threadpoolctl.ThreadpoolController:
    # discovering the loaded BLAS libraries costs ~0.4 ms; limiting through a kept controller
    # costs ~20 us, cheap enough to do around every batch
    return threadpoolctl.ThreadpoolController()


@contextmanager
def _numba_threads(n: int) -> Iterator[None]:
    # The thread budget covers BLAS too: table rebuilds (SimHash as BLAS products) and the
    # MONGOOSE hash fit call NumPy's matmul, whose OpenBLAS pool would otherwise use every core
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with _blas_controller().limit(limits=n, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(previous)


class SlideNetwork:
    """Sparse input -> hidden layers -> softmax output, any layer dense or LSH-sampled.

    Parameters
    ----------
    config : SlideConfig, optional
        Network, optimiser and hashing settings (default: the MLSys 2020 network).
    seed : int
        Seeds the weights, the hash functions and the random top-up.
    threads : int
        Numba threads. One thread runs the serial kernels (bit-deterministic); more threads run
        the parallel ones (HOGWILD, not deterministic).

    Attributes
    ----------
    method : str
        Curve name: ``slide``, or ``slide-mongoose-scheduler`` / ``slide-mongoose`` (learned
        hash) when a sampled layer uses the MONGOOSE schedule.
    layers : list of LayerParams
        The input-major first layer, then neuron-major layers; the last is the output layer.
    """

    device = "cpu"

    def __init__(
        self, config: SlideConfig | None = None, *, seed: int = 0, threads: int = 1
    ) -> None:
        if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
            raise ConfigError(
                f"threads must be in [1, {numba.config.NUMBA_NUM_THREADS}] on this machine, "
                f"got {threads}"
            )
        self.config = config if config is not None else SlideConfig()
        self.seed = int(seed)
        self.threads = int(threads)
        self.layers: list[LayerParams] = []
        self._specs: list[LayerConfig | OutputConfig] = [*self.config.hidden, self.config.output]
        self.method = _method_name(self._specs)
        self._samplers: dict[int, LayerSampler] = {}
        self._rowwise: set[int] = set()  # sampled layers whose gradient is summed per row
        self._pairs: dict[int, dict[str, np.ndarray]] = {}
        self._train: XCData | None = None
        self._buffers: BatchBuffers | None = None
        self._step = 0
        self._seen = 0  # training samples seen (the table schedules count samples)
        self._corr = np.zeros(0)
        self._reset_stats()

    # ------------------------------------------------------------------ set-up

    def prepare(self, train: XCData) -> None:
        """Build layers, hash tables and buffers for ``train`` (untimed start-up).

        Parameters
        ----------
        train : XCData
            The training set (kept by reference; batches are row numbers into it).
        """
        max_labels = int(np.diff(train.y_indptr).max(initial=0))
        self._build(train.n_features, train.n_labels, max_labels)
        self._train = train
        out_sampler = self._samplers.get(len(self.layers) - 1)
        if out_sampler is not None and out_sampler.cfg.topup_sampler == "log-uniform":
            out_sampler.set_label_counts(np.bincount(train.y_indices, minlength=train.n_labels))

    def _build(self, n_features: int, n_labels: int, max_labels: int) -> None:
        if n_labels < 1 or n_features < 1:
            raise ConfigError("the training set needs at least one feature and one label")
        self._max_labels = max_labels
        self._widths = [spec.units for spec in self.config.hidden] + [n_labels]
        self.layers = []
        sampled = {i for i, spec in enumerate(self._specs) if spec.sampled}
        self._rowwise = (
            {i for i in sampled if i > 0 and i - 1 not in sampled}
            if self.config.accumulate_mode == "rows"
            else set()
        )
        n_in = n_features
        for index, n_out in enumerate(self._widths):
            rng = np.random.default_rng([self.seed, index])
            self.layers.append(
                init_layer(
                    n_in,
                    n_out,
                    index == 0,
                    self.config.init,
                    self.config.init_std,
                    rng,
                    with_grad=index not in self._rowwise,
                )
            )
            n_in = n_out
        last = len(self._widths) - 1
        try:
            self._samplers = {
                index: LayerSampler(
                    spec.hash,
                    self.layers[index].n_out,
                    self.layers[index].n_in,
                    is_output=index == last,
                    max_labels=max_labels,
                    seed=self.seed,
                    layer_index=index,
                    threads=self.threads,
                )
                for index, spec in enumerate(self._specs)
                if spec.sampled
            }
        except ValueError as err:
            raise ConfigError(f"hash settings: {err}") from err
        self._step = 0
        self._seen = 0
        self._buffers = None
        with _numba_threads(self.threads):
            for index, sampler in self._samplers.items():
                sampler.build(self._neuron_rows(index))
                if sampler.cfg.schedule == "mongoose":
                    self._start_mongoose(index, sampler)
        self._reset_stats()

    def _start_mongoose(self, index: int, sampler: LayerSampler) -> None:
        if index == 0:
            raise ConfigError("the mongoose schedule maintains neuron-major layers, not the first")
        if sampler.cfg.mongoose.learn and index - 1 in self._samplers:
            raise ConfigError("mongoose.learn needs the layer below the sampled layer to be dense")
        sampler.start_mongoose(self.layers[index].w, self.layers[index].b)

    def _neuron_rows(self, index: int) -> np.ndarray:
        # each neuron's weight vector as a row (the first layer stores neurons as columns)
        w = self.layers[index].w
        return np.ascontiguousarray(w.T) if index == 0 else w

    def warmup(self, rows: np.ndarray) -> None:
        """Compile every kernel on a probe network; this network's state is not touched.

        The probe has this configuration (layer types, hash family, policy, schedule, thread
        count) on a tiny synthetic dataset: numba compiles by argument types, not sizes, so the
        probe compiles exactly the kernels training will call, at no memory cost (a snapshot of
        an Amazon-670K-sized network would double its peak memory).

        Parameters
        ----------
        rows : int (B,)
            Training rows of one batch (only their number is used).
        """
        n = max(2, len(rows))
        probe = SlideNetwork(_probe_config(self.config, n), seed=self.seed, threads=self.threads)
        data = _probe_data(n)
        probe.prepare(data)
        order = np.arange(data.n_points)
        for _ in range(2):  # step 1 rebuilds the tables, step 2 redraws the hash functions
            probe.train_batch(order)
        probe.predict_topk(data, 1)
        if probe._samplers:
            probe.predict_topk_lsh(data, 1)

    # ------------------------------------------------------------------ training

    def train_batch(self, rows: np.ndarray) -> float:
        """One Adam step on training rows ``rows``.

        Parameters
        ----------
        rows : int (B,)
            Row numbers into the training set.

        Returns
        -------
        float
            Mean loss over the batch's labelled samples (0.0 if none has a label).
        """
        train = self._require_train()
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if rows.ndim != 1 or rows.size == 0:
            raise ValueError("rows must be a non-empty 1-D array of training row numbers")
        if rows.min() < 0 or rows.max() >= train.n_points:
            raise IndexError(f"training rows must be in [0, {train.n_points})")
        buf = self._batch_buffers(rows.shape[0])
        step = self._step + 1
        k = PARALLEL if self.threads > 1 else SERIAL
        timers = self._timers
        last = len(self.layers) - 1
        with _numba_threads(self.threads):
            for index in range(len(self.layers)):
                if index in self._samplers:
                    cos = float("nan")
                    if index == last and index > 0 and index - 1 not in self._samplers:
                        query = buf.val[index - 1][: rows.shape[0], : self.layers[index].n_in]
                        cos = mean_pairwise_cosine(query)
                        if cos == cos:  # NaN: fewer than two nonzero queries
                            self._cos_sum += cos
                            self._cos_batches += 1
                    t0 = time.perf_counter()
                    self._select(k, index, train, rows, buf, with_labels=index == last,
                                 training=True, query_cos=cos)
                    if index in self._rowwise:
                        self._group(k, index, buf)
                    timers["hash"] += time.perf_counter() - t0
                    if index == last and self._samplers[index].last_uniform:
                        self._uniform_batches += 1
                t0 = time.perf_counter()
                if index in self._rowwise:
                    self._nm_forward(k, index, buf, relu=index < last)
                else:
                    self._forward(k, index, train, rows, buf, relu=index < last, dense_inputs=False)
                timers["forward"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            ids, cnt, val = buf.layer(last)
            out_sampler = self._samplers.get(last)
            if out_sampler is not None and out_sampler.cfg.topup_correct:
                out_sampler.correct(ids, cnt, val, train.y_indptr[rows + 1] - train.y_indptr[rows])
            k.softmax_loss(
                rows,
                train.y_indptr,
                train.y_indices,
                ids,
                cnt,
                val,
                last in self._samplers,
                buf.loss,
            )
            timers["forward"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            self._backward(k, train, rows, buf, step)
            timers["backward"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            self._update(k, step)
            timers["update"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            self._maintain(step, self._seen, self._seen + rows.shape[0], buf)
            timers["tables"] += time.perf_counter() - t0
        self._step = step
        self._seen += rows.shape[0]
        self._count_work(train, rows, buf)
        n_labelled = int(np.count_nonzero(train.y_indptr[rows + 1] - train.y_indptr[rows]))
        return float(buf.loss.sum() / n_labelled) if n_labelled else 0.0

    def _maintain(self, step: int, before: int, after: int, buf: BatchBuffers) -> None:
        # before/after: training samples seen before and after this batch (the reference and
        # decay schedules count samples; MONGOOSE checks every so many steps)
        lazy = self.config.adam == "lazy"
        for index, sampler in self._samplers.items():
            if sampler.mongoose is None:
                self._rebuilds += sampler.maintain(
                    before, after, lambda i=index: self._neuron_rows(i),
                    self._rebuild_counts(index),
                )
                continue
            layer = self.layers[index]
            inputs = buf.val[index - 1][:, : layer.n_in] if sampler.cfg.mongoose.learn else None
            self._rebuilds += sampler.maintain_mongoose(
                step, layer.w, layer.b, (buf.ids[index], buf.cnt[index]) if lazy else None, inputs
            )

    def _rebuild_counts(self, index: int) -> np.ndarray | None:
        # lazy Adam moves a neuron-major row only when its step count moves, so a rebuild
        # re-hashes just those rows (the first layer stores neurons as columns: all of them)
        if self.config.adam == "lazy" and index > 0:
            return self.layers[index].row_step
        return None

    def _select(
        self,
        k: KernelSet,
        index: int,
        data: XCData,
        rows: np.ndarray,
        buf: BatchBuffers,
        with_labels: bool,
        scratch: SelectScratch | None = None,
        training: bool = False,
        query_cos: float = float("nan"),
    ) -> None:
        # training: the hash settings' centred tables, extra top-up and uniform phase apply
        # (never at inference); query_cos: the batch's mean pairwise query cosine
        sampler = self._samplers[index]
        ids, cnt, _ = buf.layer(index)
        if index == 0:
            sampler.select_sparse(
                k.parallel,
                self.layers[0].w.T,
                rows,
                (data.x_indptr, data.x_indices, data.x_values),
                data.y_indptr,
                data.y_indices,
                with_labels,
                ids,
                cnt,
                scratch,
            )
        else:
            sampler.select_dense(
                k.parallel,
                self.layers[index].w,
                buf.layer(index - 1),
                index - 1 not in self._samplers,
                rows,
                data.y_indptr,
                data.y_indices,
                with_labels,
                ids,
                cnt,
                scratch,
                center_queries=training,
                query_cos=query_cos,
            )

    def _group(self, k: KernelSet, index: int, buf: BatchBuffers) -> None:
        # the batch's (sample, position) pairs of a row-wise layer grouped by neuron, once
        p = self._pairs[index]
        largest = k.group_pairs(
            buf.ids[index],
            buf.cnt[index],
            *(p[name] for name in ("hist", "tmp_j", "tmp_s", "tmp_a", "slot_of")),
            *self._groups(index),
        )
        if largest > buf.batch:
            raise RuntimeError(f"layer {index}: a sample's active set holds a neuron twice")

    def _groups(self, index: int) -> tuple[np.ndarray, ...]:
        # the grouped pairs of a row-wise layer, in the neuron-major kernels' argument order
        p = self._pairs[index]
        return tuple(
            p[n] for n in ("part_ptr", "part_nu", "unique", "u_ptr", "pair_sample", "pair_pos")
        )

    def _nm_forward(self, k: KernelSet, index: int, buf: BatchBuffers, relu: bool) -> None:
        layer = self.layers[index]
        k.nm_forward(
            *self._groups(index), layer.w, layer.b, buf.val[index - 1], buf.val[index], relu
        )

    def _forward(
        self,
        k: KernelSet,
        index: int,
        data: XCData,
        rows: np.ndarray,
        buf: BatchBuffers,
        relu: bool,
        dense_inputs: bool,
    ) -> None:
        # dense_inputs: every layer below is dense (inference without hashing)
        layer = self.layers[index]
        ids, cnt, val = buf.layer(index)
        dense = dense_inputs or index not in self._samplers
        if index == 0:
            k.input_forward(
                rows,
                data.x_indptr,
                data.x_indices,
                data.x_values,
                layer.w,
                layer.b,
                ids,
                cnt,
                val,
                dense,
                relu,
            )
        else:
            prev_dense = dense_inputs or index - 1 not in self._samplers
            k.layer_forward(
                layer.w, layer.b, *buf.layer(index - 1), prev_dense, ids, cnt, val, relu
            )

    def _backward(
        self, k: KernelSet, data: XCData, rows: np.ndarray, buf: BatchBuffers, step: int
    ) -> None:
        # the output layer's delta lives in its value buffer (written by softmax_loss)
        deltas = [*buf.delta[:-1], buf.val[-1]]
        for index in range(len(self.layers) - 1, 0, -1):
            layer = self.layers[index]
            p = index - 1
            if index not in self._samplers and p not in self._samplers:
                k.dense_backward(
                    layer.w,
                    layer.g,
                    layer.gb,
                    layer.stamp,
                    step,
                    deltas[index],
                    buf.val[p],
                    deltas[p],
                )
            elif index in self._rowwise:  # gradient, delta below and Adam step in one pass
                pairs = self._pairs[index]
                k.nm_fused(
                    *self._groups(index),
                    deltas[index],
                    buf.val[p],
                    layer.w,
                    layer.m,
                    layer.v,
                    layer.b,
                    layer.mb,
                    layer.vb,
                    layer.row_step,
                    layer.stamp,
                    step,
                    *self._adam_hyper()[1:],
                    pairs["gacc"],
                    pairs["pd"],
                    pairs["sbuf"],
                    pairs["dbuf"],
                )
                k.reduce_prev_delta(pairs["pd"], buf.val[p], deltas[p])
            else:
                k.layer_backward(
                    layer.w,
                    layer.g,
                    layer.gb,
                    layer.stamp,
                    step,
                    buf.ids[index],
                    buf.cnt[index],
                    deltas[index],
                    *buf.layer(p),
                    p not in self._samplers,
                    deltas[p],
                )
        first = self.layers[0]
        k.input_backward(
            rows,
            data.x_indptr,
            data.x_indices,
            data.x_values,
            first.g,
            first.stamp,
            step,
            buf.ids[0],
            buf.cnt[0],
            deltas[0],
            0 not in self._samplers,
        )
        if scatter_bias_grad(buf.ids[0], buf.cnt[0], deltas[0], first.gb):
            first.bias_stamp[0] = step

    def _adam_hyper(self) -> tuple[bool, float, float, float, float, np.ndarray]:
        # (lazy, lr, beta1, beta2, eps, corr) for the Adam kernels; corr covers step + 1
        cfg = self.config
        if self._corr.shape[0] <= self._step + 1:  # grows geometrically: rare
            self._corr = bias_correction(cfg.beta1, cfg.beta2, 2 * self._step + 1024)
        lr = cfg.lr
        if cfg.lr_warmup_steps:  # the step being taken is self._step + 1
            lr *= min(1.0, (self._step + 1) / cfg.lr_warmup_steps)
        return cfg.adam == "lazy", lr, cfg.beta1, cfg.beta2, cfg.eps, self._corr

    def _update(self, k: KernelSet, step: int) -> None:
        hyper = self._adam_hyper()
        for index, layer in enumerate(self.layers):
            if index in self._rowwise:  # stepped in the fused backward pass
                continue
            k.adam_rows(
                layer.w,
                layer.g,
                layer.m,
                layer.v,
                *layer.bias_rows(),
                layer.row_step,
                layer.stamp,
                step,
                *hyper,
            )
        first = self.layers[0]  # its bias is one optimiser row of its own
        SERIAL.adam_rows(
            first.b[None, :],
            first.gb[None, :],
            first.mb[None, :],
            first.vb[None, :],
            *NO_BIAS,
            first.bias_step,
            first.bias_stamp,
            step,
            *hyper,
        )

    # ------------------------------------------------------------------ evaluation

    def predict_topk(self, data: XCData, k: int) -> np.ndarray:
        """Top-``k`` labels from a dense forward over every neuron of every layer (untimed).

        Points are scored in chunks whose score matrix fits ``config.eval_chunk_mb``; the output
        layer of each chunk is one BLAS product.

        Parameters
        ----------
        data : XCData
            Points to score (same feature space as the training set).
        k : int
            Labels per point, ``1 <= k <= n_labels``.

        Returns
        -------
        int32 (n, k)
            Label ids, best first (ties: lower id first).
        """
        self._check_predict(data, k)
        n_labels = self._widths[-1]
        chunk = self._chunk_points(data.n_points, max(self._widths))
        last = len(self.layers) - 1
        hidden = BatchBuffers(self._widths[:-1], [None] * last, chunk)
        scores = np.empty((chunk, n_labels), dtype=np.float32)
        out = np.empty((data.n_points, k), dtype=np.int32)
        out_layer = self.layers[-1]
        with _numba_threads(self.threads):
            for start in range(0, data.n_points, chunk):
                rows = np.arange(start, min(start + chunk, data.n_points), dtype=np.int64)
                m = rows.shape[0]
                buf = hidden.view(m)
                for index in range(last):
                    self._forward(PARALLEL, index, data, rows, buf, relu=True, dense_inputs=True)
                s = scores[:m]
                if last == 0:
                    PARALLEL.input_forward(
                        rows,
                        data.x_indptr,
                        data.x_indices,
                        data.x_values,
                        out_layer.w,
                        out_layer.b,
                        np.zeros((m, 1), np.int32),
                        np.full(m, n_labels, np.int32),
                        s,
                        True,
                        False,
                    )
                else:
                    np.matmul(buf.val[last - 1], out_layer.w.T, out=s)
                    s += out_layer.b
                out[start : start + m] = topk_dense(s, k)
        return out

    def predict_topk_lsh(self, data: XCData, k: int) -> np.ndarray:
        """Top-``k`` labels scoring only the LSH-selected neurons of every sampled layer.

        Parameters
        ----------
        data : XCData
            Points to score.
        k : int
            Labels per point.

        Returns
        -------
        int32 (n, k)
            Label ids among each point's active output neurons, best first; -1 pads a point
            with fewer than ``k`` active outputs.
        """
        self._check_predict(data, k)
        chunk = min(max(data.n_points, 1), 1024)
        buffers = BatchBuffers(self._widths, self._caps(), chunk)
        out = np.empty((data.n_points, k), dtype=np.int32)
        last = len(self.layers) - 1
        scratch = {index: s.inference_scratch() for index, s in self._samplers.items()}
        with _numba_threads(self.threads):
            for start in range(0, data.n_points, chunk):
                rows = np.arange(start, min(start + chunk, data.n_points), dtype=np.int64)
                buf = buffers.view(rows.shape[0])
                for index in range(last + 1):
                    if index in self._samplers:
                        self._select(
                            PARALLEL,
                            index,
                            data,
                            rows,
                            buf,
                            with_labels=False,
                            scratch=scratch[index],
                        )
                    self._forward(
                        PARALLEL, index, data, rows, buf, relu=index < last, dense_inputs=False
                    )
                ids, cnt, val = buf.layer(last)
                out[start : start + rows.shape[0]] = topk_sparse(val, ids, cnt, k)
        return out

    def sampling_stats(self, data: XCData, batch: int = 128) -> dict[str, float]:
        """What the output layer's active sets hold, on ``data`` (untimed; curve columns).

        Each point of ``data`` is given the active set the engine would pick for it in
        training (its labels, the policy's neurons, the top-up; centred tables centred on the
        mean query of its chunk of ``batch`` points; an RNG stream of its own, so the training
        streams do not move), and its exact logits over every output neuron are computed.

        Parameters
        ----------
        data : XCData
            Points with their labels (the evaluation subset).
        batch : int
            Points selected together (the training batch size).

        Returns
        -------
        dict
            ``recall_top1`` / ``recall_top10``: mean over the points of the fraction of its
            top-1 / top-10 non-label output neurons by exact logit (its hardest negatives) that
            its active set contains (a uniform random active set of A of L neurons gives about
            A / L); ``share_labels``, ``share_tables``, ``share_topup``: the fractions of all
            active entries that are labels, neurons the policy found in the tables, and random
            top-up. NaN everywhere for a dense output layer.
        """
        last = len(self.layers) - 1
        nan = dict.fromkeys(SAMPLING_COLUMNS, float("nan"))
        if last not in self._samplers or data.n_points == 0:
            return nan
        self._check_predict(data, 1)
        sampler = self._samplers[last]
        n_labels = self._widths[-1]
        chunk = max(1, min(batch, self._chunk_points(data.n_points, n_labels)))
        buffers = BatchBuffers(self._widths, self._caps(), chunk)
        scores = np.empty((chunk, n_labels), dtype=np.float32)
        scratch = {index: s.inference_scratch() for index, s in self._samplers.items()}
        policy = sampler.policy
        kind = policy.kind
        no_topup = policy._replace(min_active=0)
        k_neg = [k for k in (1, 10) if k < n_labels]
        hits = dict.fromkeys(k_neg, 0.0)
        totals = dict.fromkeys(("active", "labels", "tables", "topup"), 0)
        in_set = np.zeros(n_labels, dtype=bool)
        with _numba_threads(self.threads):
            for start in range(0, data.n_points, chunk):
                rows = np.arange(start, min(start + chunk, data.n_points), dtype=np.int64)
                m = rows.shape[0]
                buf = buffers.view(m)
                for index in range(last):  # the layers below, as training computes them
                    if index in self._samplers:
                        self._select(PARALLEL, index, data, rows, buf, with_labels=False,
                                     scratch=scratch[index], training=True)
                    self._forward(PARALLEL, index, data, rows, buf, relu=True,
                                  dense_inputs=False)
                self._select(PARALLEL, last, data, rows, buf, with_labels=True,
                             scratch=scratch[last], training=True)
                ids = buf.ids[last][:m].copy()
                cnt = buf.cnt[last][:m].copy()
                n_found = cnt
                if sampler.post_topup:  # the top-up was drawn after the tables: it starts here
                    n_found = sampler.found[:m].copy()
                elif kind == POLICY_UNION:  # the same selection without top-up (no RNG before it)
                    sampler.policy = no_topup
                    try:
                        self._select(PARALLEL, last, data, rows, buf, with_labels=True,
                                     scratch=sampler.inference_scratch(), training=True)
                    finally:
                        sampler.policy = policy
                    n_found = buf.cnt[last][:m].copy()
                s = scores[:m]
                self._exact_logits(data, rows, buf, s)
                n_lab = np.minimum(data.y_indptr[rows + 1] - data.y_indptr[rows], cnt)
                for i in range(m):
                    y = data.y_indices[data.y_indptr[rows[i]] : data.y_indptr[rows[i] + 1]]
                    s[i, y] = -np.inf
                top = topk_dense(s, max(k_neg)) if k_neg else np.zeros((m, 0), np.int32)
                for i in range(m):
                    act = ids[i, : cnt[i]]
                    in_set[act] = True
                    for k in k_neg:
                        hits[k] += float(in_set[top[i, :k]].mean())
                    in_set[act] = False
                totals["active"] += int(cnt.sum())
                totals["labels"] += int(n_lab.sum())
                if kind == POLICY_RANDOM:
                    totals["topup"] += int((cnt - n_lab).sum())
                else:
                    totals["tables"] += int((n_found - n_lab).sum())
                    totals["topup"] += int((cnt - n_found).sum())
        out = nan
        for k in k_neg:
            out[f"recall_top{k}"] = hits[k] / data.n_points
        if totals["active"]:
            for part in ("tables", "labels", "topup"):
                out[f"share_{part}"] = totals[part] / totals["active"]
        return out

    def _exact_logits(self, data: XCData, rows: np.ndarray, buf: BatchBuffers,
                      out: np.ndarray) -> None:
        # every output neuron's logit for the chunk ``rows`` (m, n_labels), from the inputs the
        # output layer sees in training (buf holds the layers below)
        last = len(self.layers) - 1
        layer = self.layers[last]
        m = rows.shape[0]
        if last == 0:
            PARALLEL.input_forward(rows, data.x_indptr, data.x_indices, data.x_values, layer.w,
                                   layer.b, np.zeros((m, 1), np.int32),
                                   np.full(m, self._widths[0], np.int32), out, True, False)
            return
        ids, cnt, val = buf.layer(last - 1)
        if last - 1 in self._samplers:  # a sampled layer below: scatter its active values
            x = np.zeros((m, layer.n_in), dtype=np.float32)
            for i in range(m):
                x[i, ids[i, : cnt[i]]] = val[i, : cnt[i]]
        else:
            x = np.ascontiguousarray(val[:m, : layer.n_in])
        np.matmul(x, layer.w.T, out=out)
        out += layer.b

    def evaluate(self, data: XCData, ks: tuple[int, ...] = (1, 3, 5)) -> dict[int, float]:
        """Precision at each ``k`` with the dense forward (:meth:`predict_topk`)."""
        topk = self.predict_topk(data, max(ks))
        return precision_at_k(topk, data.y_indptr, data.y_indices, ks)

    def _check_predict(self, data: XCData, k: int) -> None:
        if not self.layers:
            raise RuntimeError("call prepare() (or load()) before predicting")
        if data.n_features != self.layers[0].n_in:
            raise ConfigError(
                f"data has {data.n_features} features, the network {self.layers[0].n_in}"
            )
        if not 1 <= k <= self._widths[-1]:
            raise ValueError(f"k must be in [1, {self._widths[-1]}], got {k}")

    def _chunk_points(self, n: int, width: int) -> int:
        budget = self.config.eval_chunk_mb * 2**20
        return int(max(1, min(max(n, 1), budget // (4 * width))))

    # ------------------------------------------------------------------ instrumentation

    def _reset_stats(self) -> None:
        self._timers = dict.fromkeys(_PHASES, 0.0)
        self._rebuilds = 0
        self._samples = 0
        self._batches = 0
        self._active = dict.fromkeys(self._samplers, 0)
        self._macs = 0.0
        self._macs_dense = 0.0
        self._distinct = 0
        self._cos_sum, self._cos_batches = 0.0, 0  # batches with >= 2 nonzero queries
        self._uniform_batches = 0  # training batches whose output layer skipped the tables

    def _count_work(self, data: XCData, rows: np.ndarray, buf: BatchBuffers) -> None:
        # forward multiply-adds: sampled vs the dense network (KDD 2017's "5%" figure)
        nnz = (data.x_indptr[rows + 1] - data.x_indptr[rows]).astype(np.float64)
        cnt = [c.astype(np.float64) for c in buf.cnt]
        macs = float(nnz @ cnt[0])
        dense = float(nnz.sum()) * self._widths[0]
        for index in range(1, len(cnt)):
            macs += float(cnt[index] @ cnt[index - 1])
            dense += rows.shape[0] * self._widths[index] * self._widths[index - 1]
        self._macs += macs
        self._macs_dense += dense
        self._samples += rows.shape[0]
        self._batches += 1
        for index in self._samplers:
            self._active[index] += int(buf.cnt[index].sum())
        last = len(self.layers) - 1
        if last in self._rowwise:
            self._distinct += int(self._pairs[last]["part_nu"].sum())

    def stats(self) -> dict[str, float]:
        """Work since the previous call, for the curve's extra columns.

        Returns
        -------
        dict
            ``active_mean`` (output layer) and ``active_mean_h<i>`` (sampled hidden layer ``i``):
            mean active neurons per sample (NaN for a dense layer); ``active_fraction``: the output
            one over the number of labels; ``mult_fraction``: forward multiply-adds over the
            dense network's; ``query_cos``: mean pairwise cosine of the output layer's hash
            queries within a batch (its dense input; NaN if that layer is sampled), near 1 when
            every sample probes the same buckets; ``distinct_rows``: distinct output neurons per
            batch (neuron-major output layer, else NaN); ``t_hash``, ``t_forward``,
            ``t_backward``, ``t_update``, ``t_tables``: seconds per phase (a neuron-major
            layer's grouping of pairs counts as hash, its fused gradient + Adam pass as
            backward); ``rebuilds``: table rebuilds; ``table_coverage``: fraction of the output
            neurons stored in at least one of its tables now (NaN for a dense output layer);
            with a ``mongoose`` schedule also ``checks``, ``reinserts``, ``fits``, ``t_sched``,
            ``t_fit`` (its drift checks, re-insertions and learned-hash fits, included in
            ``t_tables``).
        """
        if not self.layers:
            raise RuntimeError("call prepare() before stats()")
        last = len(self.layers) - 1
        n = self._samples
        out: dict[str, float] = {}
        for index in range(len(self.layers)):
            key = "active_mean" if index == last else f"active_mean_h{index}"
            if index in self._samplers and n:
                out[key] = self._active[index] / n
            elif index == last:
                out[key] = float(self._widths[last]) if n else float("nan")
        out["active_fraction"] = out["active_mean"] / self._widths[last]
        out["mult_fraction"] = self._macs / self._macs_dense if self._macs_dense else float("nan")
        cos_n = self._cos_batches
        out["query_cos"] = self._cos_sum / cos_n if cos_n else float("nan")
        rowwise = last in self._rowwise and self._batches
        out["distinct_rows"] = self._distinct / self._batches if rowwise else float("nan")
        out.update({f"t_{name}": value for name, value in self._timers.items()})
        out["rebuilds"] = float(self._rebuilds)
        if out_sampler := self._samplers.get(last):
            if out_sampler.cfg.uniform_above_cos < 1.0:
                out["uniform_share"] = (
                    self._uniform_batches / self._batches if self._batches else float("nan")
                )
        out["table_coverage"] = out_sampler.index.coverage if out_sampler else float("nan")
        policies = [s.mongoose for s in self._samplers.values() if s.mongoose is not None]
        if policies:  # MONGOOSE layers: checks, re-insertions and learned-hash fits as well
            extra = dict.fromkeys(_MONGOOSE_COLUMNS, 0.0)
            for policy in policies:
                delta = policy.stats()
                for key in _MONGOOSE_COLUMNS:
                    extra[key] += delta[key]
            out.update(extra)
        self._reset_stats()
        return out

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, np.ndarray]:
        """Weights, Adam moments and per-row steps, hash tables, RNG streams, step and sample
        counters.

        The arrays are the live state, not copies (as PyTorch's ``state_dict``): write them out
        (or copy them) before the next :meth:`train_batch`. Hash functions are not stored: they
        are redrawn from the seed and the number of redraws on load.
        """
        state = {
            "step": np.array([self._step], dtype=np.int64),
            "samples": np.array([self._seen], dtype=np.int64),
        }
        for index, layer in enumerate(self.layers):
            state.update(layer.state(f"layer{index}."))
        for index, sampler in self._samplers.items():
            state.update(sampler.state(f"lsh{index}."))
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output into a prepared network of the same shape."""
        if not self.layers:
            raise RuntimeError("call prepare() (or load()) before load_state_dict()")
        state = dict(state)
        for index, layer in enumerate(self.layers):
            layer.load(state, f"layer{index}.")
        for index, sampler in self._samplers.items():
            sampler.load(state, f"lsh{index}.", lambda i=index: self._neuron_rows(i))
        self._step = int(np.asarray(state["step"])[0])
        self._seen = int(np.asarray(state["samples"])[0])

    def is_finite(self) -> bool:
        """Whether every weight and bias is finite."""
        return all(layer.all_finite() for layer in self.layers)

    def save(self, path: str | PathLike[str]) -> None:
        """Write a verified checkpoint with the config, seed and shapes needed by :meth:`load`."""
        meta = {
            "config": asdict(self.config),
            "seed": self.seed,
            "shape": [self.layers[0].n_in, self._widths[-1], self._max_labels],
        }
        save_checkpoint(path, self.state_dict(), meta)

    @classmethod
    def load(cls, path: str | PathLike[str], threads: int = 1) -> SlideNetwork:
        """A network restored from :meth:`save` (ready to predict; call prepare() to train on)."""
        state, meta = load_checkpoint(path)
        net = cls(from_dict(SlideConfig, meta["config"]), seed=int(meta["seed"]), threads=threads)
        n_features, n_labels, max_labels = (int(v) for v in meta["shape"])
        net._build(n_features, n_labels, max_labels)
        net.load_state_dict(state)
        return net

    def fit(
        self,
        train: XCData,
        test: XCData,
        out_csv: str | PathLike[str],
        settings: RunSettings | None = None,
        **kwargs: Any,
    ) -> RunResult:
        """Train with the shared harness (batch order, clock, evaluation, checkpoints).

        Parameters
        ----------
        train, test : XCData
            Shuffled training and test sets.
        out_csv : path-like
            Curve CSV (sidecar ``.json`` beside it).
        settings : RunSettings, optional
            Default: the harness defaults with this network's seed and threads.
        **kwargs
            Passed to :func:`slide_bench.harness.run` (``checkpoint_path``, ...).

        Returns
        -------
        RunResult
        """
        if settings is None:
            settings = RunSettings(seed=self.seed, threads=self.threads)
        if settings.threads != self.threads:
            raise ConfigError(
                f"settings.threads={settings.threads} but the network uses {self.threads}"
            )
        return harness_run(self, train, test, settings, out_csv, asdict(self.config), **kwargs)

    # ------------------------------------------------------------------ helpers

    def _require_train(self) -> XCData:
        if self._train is None:
            raise RuntimeError("call prepare(train) before training")
        return self._train

    def _caps(self) -> list[int | None]:
        return [
            self._samplers[i].capacity if i in self._samplers else None
            for i in range(len(self.layers))
        ]

    def _batch_buffers(self, batch: int) -> BatchBuffers:
        if self._buffers is None or self._buffers.batch < batch:
            self._buffers = BatchBuffers(self._widths, self._caps(), batch)
            self._pairs = {
                i: pair_buffers(
                    self._widths[i],
                    self.layers[i].n_in,
                    batch,
                    self._buffers.ids[i].shape[1],
                )
                for i in self._rowwise
            }
        return self._buffers.view(batch)


def _method_name(specs: list[LayerConfig | OutputConfig]) -> str:
    mongoose = [s.hash.mongoose for s in specs if s.sampled and s.hash.schedule == "mongoose"]
    if not mongoose:
        return "slide"
    return "slide-mongoose" if any(m.learn for m in mongoose) else "slide-mongoose-scheduler"


def _probe_config(config: SlideConfig, batch: int) -> SlideConfig:
    # same layer types, family, policy and schedule; tiny tables, maintenance at every step
    probe = copy.deepcopy(config)
    for spec in [*probe.hidden, probe.output]:
        h = spec.hash
        h.l, h.n_buckets, h.bucket_capacity, h.min_active = 2, 64, 4, 4
        # a rebuild after every batch, a redraw after the second (batches of ``batch`` samples)
        h.rebuild_every_samples, h.redraw_every_samples = 1, 2 * batch
        h.decay_first_samples = 1
        h.mongoose.check_every, h.mongoose.threshold = 1, 1e-6
        h.center_tables = min(h.center_tables, h.l)  # still > 0: the centred kernel path
    return probe


def _probe_data(n: int) -> XCData:
    # n points, 64 features, 16 labels: four features and up to two labels each (the first
    # point has none), with the dtypes of every XCData
    x_rows = [np.sort((i * 7 + np.arange(4) * 13) % 64) for i in range(n)]
    y_rows = [np.sort((i + np.arange(min(i, 2)) * 5) % 16) for i in range(n)]
    return XCData(
        x_indptr=np.arange(0, 4 * n + 1, 4, dtype=np.int64),
        x_indices=np.concatenate(x_rows).astype(np.int32),
        x_values=np.ones(4 * n, dtype=np.float32),
        y_indptr=np.concatenate([[0], np.cumsum([len(r) for r in y_rows])]).astype(np.int64),
        y_indices=np.concatenate(y_rows).astype(np.int32),
        n_features=64,
        n_labels=16,
    )
