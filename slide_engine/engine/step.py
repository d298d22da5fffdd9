"""The training step of :class:`~slide_engine.engine.network.SlideNetwork`: hash, forward,
loss, backward, Adam update and table maintenance of one batch, each phase timed.

A mixin: it works on the network's arrays (``layers``, ``_samplers``, ``_rowwise``, ``_pairs``,
``_widths``, ``_timers``), which :class:`~slide_engine.engine.network.SlideNetwork` builds.
The phase timers read this module's ``time.perf_counter``.
"""

from __future__ import annotations

import time

import numpy as np

from slide_bench.data import XCData
from slide_engine.engine.adam import bias_correction
from slide_engine.engine.buffers import BatchBuffers
from slide_engine.engine.kernels import PARALLEL, SERIAL, KernelSet, scatter_bias_grad
from slide_engine.engine.params import NO_BIAS
from slide_engine.engine.threads import thread_budget
from slide_engine.lsh import SelectScratch

__all__ = ["TrainingStep"]


class TrainingStep:
    """One optimiser step over a batch (:meth:`train_batch`) and the per-layer passes it uses."""

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
        rows = _checked_rows(rows, train.n_points)
        buf = self._batch_buffers(rows.shape[0])
        step = self._step + 1
        k = PARALLEL if self.threads > 1 else SERIAL
        timers = self._timers
        with thread_budget(self.threads):
            for index in range(len(self.layers)):
                if index in self._samplers:
                    self._hash_layer(k, index, train, rows, buf)
                t0 = time.perf_counter()
                self._train_forward(k, index, train, rows, buf)
                timers["forward"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            self._softmax_loss(k, train, rows, buf)
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

    def _hash_layer(
        self, k: KernelSet, index: int, train: XCData, rows: np.ndarray, buf: BatchBuffers
    ) -> None:
        # the hash phase of a sampled layer: its active neurons (output layer: labels first) and,
        # for a neuron-major layer, the batch's pairs grouped by neuron
        last = len(self.layers) - 1
        cos = float("nan")
        if index == last and index > 0 and index - 1 not in self._samplers:
            cos = self._record_query_cos(
                buf.val[index - 1][: rows.shape[0], : self.layers[index].n_in]
            )
        t0 = time.perf_counter()
        self._select(k, index, train, rows, buf, with_labels=index == last,
                     training=True, query_cos=cos)
        if index in self._rowwise:
            self._group(k, index, buf)
        self._timers["hash"] += time.perf_counter() - t0
        if index == last and self._samplers[index].last_uniform:
            self._uniform_batches += 1

    def _train_forward(
        self, k: KernelSet, index: int, train: XCData, rows: np.ndarray, buf: BatchBuffers
    ) -> None:
        relu = index < len(self.layers) - 1
        if index in self._rowwise:
            self._nm_forward(k, index, buf, relu=relu)
        else:
            self._forward(k, index, train, rows, buf, relu=relu, dense_inputs=False)

    def _softmax_loss(
        self, k: KernelSet, train: XCData, rows: np.ndarray, buf: BatchBuffers
    ) -> None:
        # softmax over each sample's active output neurons; delta = p - t into the value buffer
        last = len(self.layers) - 1
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
            p = index - 1
            if index not in self._samplers and p not in self._samplers:
                layer = self.layers[index]
                k.dense_backward(layer.w, layer.g, layer.gb, layer.stamp, step, deltas[index],
                                 buf.val[p], deltas[p])
            elif index in self._rowwise:  # gradient, delta below and Adam step in one pass
                self._nm_backward(k, index, buf, deltas, step)
            else:
                layer = self.layers[index]
                k.layer_backward(layer.w, layer.g, layer.gb, layer.stamp, step, buf.ids[index],
                                 buf.cnt[index], deltas[index], *buf.layer(p),
                                 p not in self._samplers, deltas[p])
        first = self.layers[0]
        k.input_backward(rows, data.x_indptr, data.x_indices, data.x_values, first.g,
                         first.stamp, step, buf.ids[0], buf.cnt[0], deltas[0],
                         0 not in self._samplers)
        if scatter_bias_grad(buf.ids[0], buf.cnt[0], deltas[0], first.gb):
            first.bias_stamp[0] = step

    def _nm_backward(self, k: KernelSet, index: int, buf: BatchBuffers,
                     deltas: list[np.ndarray], step: int) -> None:
        # a neuron-major layer: per distinct row its gradient, the delta below and its Adam step
        layer, pairs, p = self.layers[index], self._pairs[index], index - 1
        k.nm_fused(
            *self._groups(index),
            deltas[index],
            buf.val[p],
            layer.w, layer.m, layer.v,
            layer.b, layer.mb, layer.vb,
            layer.row_step,
            layer.stamp,
            step,
            *self._adam_hyper()[1:],
            pairs["gacc"], pairs["pd"], pairs["sbuf"], pairs["dbuf"],
        )
        k.reduce_prev_delta(pairs["pd"], buf.val[p], deltas[p])

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


def _checked_rows(rows: np.ndarray, n_points: int) -> np.ndarray:
    """Training row numbers as a contiguous int64 (B,) array, checked against the set's size."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.ndim != 1 or rows.size == 0:
        raise ValueError("rows must be a non-empty 1-D array of training row numbers")
    if rows.min() < 0 or rows.max() >= n_points:
        raise IndexError(f"training rows must be in [0, {n_points})")
    return rows
