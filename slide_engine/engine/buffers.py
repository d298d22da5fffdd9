"""Per-batch activation buffers, allocated once and reused (no allocation per sample).

For layer ``l`` with per-sample capacity ``cap_l`` (its width when dense, the selection's output
capacity when sampled) and batch capacity ``B``: ``ids`` int32 (B, cap_l), ``cnt`` int32 (B,),
``val`` float32 (B, cap_l), ``delta`` float32 (B, cap_l). A dense layer's ``ids`` rows are
``0 .. n_l-1`` and its ``cnt`` is ``n_l``, filled once. A smaller batch uses the leading rows.
"""

from __future__ import annotations

import numpy as np


class BatchBuffers:
    """Activation, active-set and delta arrays of every layer for up to ``batch`` samples.

    Parameters
    ----------
    widths : list of int
        Neurons of each layer, input to output.
    caps : list of int or None
        Per-sample active capacity of each sampled layer; None for a dense layer.
    batch : int
        Batch capacity B.
    """

    def __init__(self, widths: list[int], caps: list[int | None], batch: int) -> None:
        self.batch = batch
        self.ids: list[np.ndarray] = []
        self.cnt: list[np.ndarray] = []
        self.val: list[np.ndarray] = []
        self.delta: list[np.ndarray] = []
        for width, cap in zip(widths, caps, strict=True):
            if cap is None:
                ids = np.ascontiguousarray(
                    np.broadcast_to(np.arange(width, dtype=np.int32), (batch, width))
                )
                cnt = np.full(batch, width, dtype=np.int32)
                cap = width
            else:
                ids = np.zeros((batch, cap), dtype=np.int32)
                cnt = np.zeros(batch, dtype=np.int32)
            self.ids.append(ids)
            self.cnt.append(cnt)
            self.val.append(np.zeros((batch, cap), dtype=np.float32))
            self.delta.append(np.zeros((batch, cap), dtype=np.float32))
        self.loss = np.zeros(batch, dtype=np.float64)

    def view(self, n: int) -> BatchBuffers:
        """The same buffers restricted to the first ``n <= batch`` samples (views, no copy)."""
        out = object.__new__(BatchBuffers)
        out.batch = n
        out.ids = [a[:n] for a in self.ids]
        out.cnt = [a[:n] for a in self.cnt]
        out.val = [a[:n] for a in self.val]
        out.delta = [a[:n] for a in self.delta]
        out.loss = self.loss[:n]
        return out

    def layer(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, cnt, val)`` of layer ``index``."""
        return self.ids[index], self.cnt[index], self.val[index]
