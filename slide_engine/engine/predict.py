"""Inference of :class:`~slide_engine.engine.network.SlideNetwork`: top-k labels from a dense
forward over every neuron (the paper's P@k) or from the LSH-selected neurons only.

A mixin over the network's arrays; nothing here changes the network's state.
"""

from __future__ import annotations

import numpy as np

from slide_bench.data import XCData
from slide_bench.errors import ConfigError
from slide_bench.metrics import precision_at_k
from slide_engine.engine.buffers import BatchBuffers
from slide_engine.engine.inference import topk_dense, topk_sparse
from slide_engine.engine.kernels import PARALLEL
from slide_engine.engine.threads import thread_budget

__all__ = ["Inference"]


class Inference:
    """Top-k prediction (dense or hashed), precision at k, and the exact output logits."""

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
        with thread_budget(self.threads):
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
        with thread_budget(self.threads):
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
