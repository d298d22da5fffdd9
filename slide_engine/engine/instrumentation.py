"""What :class:`~slide_engine.engine.network.SlideNetwork` reports besides its loss: work
counters and phase times per curve row (:meth:`Instrumentation.stats`), and what the output
layer's active sets hold (:meth:`Instrumentation.sampling_stats`).

A mixin over the network's arrays; its counters are reset by every :meth:`~Instrumentation.stats`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from slide_bench.data import XCData
from slide_engine.engine.buffers import BatchBuffers
from slide_engine.engine.inference import topk_dense
from slide_engine.engine.kernels import PARALLEL
from slide_engine.engine.threads import thread_budget
from slide_engine.lsh.selection import POLICY_RANDOM, POLICY_UNION

__all__ = ["SAMPLING_COLUMNS", "Instrumentation", "mean_pairwise_cosine"]

_PHASES = ("hash", "forward", "backward", "update", "tables")

_MONGOOSE_COLUMNS = ("checks", "reinserts", "fits", "t_sched", "t_fit")

#: curve columns of :meth:`Instrumentation.sampling_stats` (evaluation rows, untimed)
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


class Instrumentation:
    """Work counters, phase timers and the sampling statistics of the output layer."""

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
        with thread_budget(self.threads):
            for start in range(0, data.n_points, chunk):
                rows = np.arange(start, min(start + chunk, data.n_points), dtype=np.int64)
                buf = buffers.view(rows.shape[0])
                ids, cnt, n_found = self._training_selection(data, rows, buf, scratch, no_topup)
                s = scores[: rows.shape[0]]
                self._exact_logits(data, rows, buf, s)
                _count_hits(data, rows, s, ids, cnt, k_neg, hits, in_set)
                n_lab = np.minimum(data.y_indptr[rows + 1] - data.y_indptr[rows], cnt)
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

    def _training_selection(
        self, data: XCData, rows: np.ndarray, buf: BatchBuffers, scratch: dict, no_topup: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the output layer's active sets of a chunk as training picks them (the layers below as
        # training computes them): ids (m, cap), counts (m,), and how many of each came before
        # the top-up (labels and table hits)
        last = len(self.layers) - 1
        m = rows.shape[0]
        sampler = self._samplers[last]
        for index in range(last):
            if index in self._samplers:
                self._select(PARALLEL, index, data, rows, buf, with_labels=False,
                             scratch=scratch[index], training=True)
            self._forward(PARALLEL, index, data, rows, buf, relu=True, dense_inputs=False)
        self._select(PARALLEL, last, data, rows, buf, with_labels=True,
                     scratch=scratch[last], training=True)
        ids = buf.ids[last][:m].copy()
        cnt = buf.cnt[last][:m].copy()
        n_found = cnt
        if sampler.post_topup:  # the top-up was drawn after the tables: it starts here
            n_found = sampler.found[:m].copy()
        elif sampler.policy.kind == POLICY_UNION:
            # the same selection without the top-up (no RNG is drawn before it)
            policy = sampler.policy
            sampler.policy = no_topup
            try:
                self._select(PARALLEL, last, data, rows, buf, with_labels=True,
                             scratch=sampler.inference_scratch(), training=True)
            finally:
                sampler.policy = policy
            n_found = buf.cnt[last][:m].copy()
        return ids, cnt, n_found

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

    def _record_query_cos(self, query: np.ndarray) -> float:
        # the output layer's hash queries of a batch (B, d): their mean pairwise cosine, counted
        # when defined (NaN: fewer than two nonzero queries)
        cos = mean_pairwise_cosine(query)
        if cos == cos:
            self._cos_sum += cos
            self._cos_batches += 1
        return cos

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


def _count_hits(data: XCData, rows: np.ndarray, scores: np.ndarray, ids: np.ndarray,
                cnt: np.ndarray, k_neg: list[int], hits: dict[int, float],
                in_set: np.ndarray) -> None:
    """Add, per point of ``rows``, the fraction of its top-k non-label neurons by exact logit
    (``scores`` (m, L), labels masked here) that its active set ``ids[i, :cnt[i]]`` holds."""
    m = rows.shape[0]
    for i in range(m):
        y = data.y_indices[data.y_indptr[rows[i]] : data.y_indptr[rows[i] + 1]]
        scores[i, y] = -np.inf
    top = topk_dense(scores, max(k_neg)) if k_neg else np.zeros((m, 0), np.int32)
    for i in range(m):
        act = ids[i, : cnt[i]]
        in_set[act] = True
        for k in k_neg:
            hits[k] += float(in_set[top[i, :k]].mean())
        in_set[act] = False
