"""A small NumPy softmax-regression Trainable: the harness's second implementation for tests."""

from __future__ import annotations

import numpy as np

from slide_bench.data.xcdata import XCData


def make_dataset(n: int, n_features: int, n_labels: int, seed: int) -> XCData:
    """Learnable toy data: each label owns a block of features; points show their label's block."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_labels, size=n)
    block = n_features // n_labels
    x_rows = []
    for lab in labels:
        own = lab * block + rng.choice(block, size=3, replace=False)
        noise = rng.choice(n_features, size=2, replace=False)
        x_rows.append(np.unique(np.concatenate([own, noise])))
    x_indptr = np.zeros(n + 1, dtype=np.int64)
    x_indptr[1:] = np.cumsum([len(r) for r in x_rows])
    x_indices = np.concatenate(x_rows).astype(np.int32)
    x_values = np.ones(x_indices.size, dtype=np.float32)
    y_indptr = np.arange(n + 1, dtype=np.int64)
    y_indices = labels.astype(np.int32)
    return XCData(x_indptr, x_indices, x_values, y_indptr, y_indices, n_features, n_labels)


class SoftmaxRegression:
    """Linear softmax on sparse inputs trained by SGD; deterministic, fully checkpointable."""

    method = "numpy-softmax"
    device = "cpu"

    def __init__(self, lr: float = 0.5, nan_at: int | None = None, crash_at: int | None = None):
        self.lr = lr
        self.nan_at = nan_at
        self.crash_at = crash_at
        self.prepared = 0

    def prepare(self, train: XCData) -> None:
        self.train = train
        self.w = np.zeros((train.n_features, train.n_labels))
        self.steps = np.zeros(1, dtype=np.int64)
        self.prepared += 1

    def warmup(self, rows: np.ndarray) -> None:
        pass

    def _dense(self, data: XCData, rows: np.ndarray) -> np.ndarray:
        x = np.zeros((len(rows), data.n_features))
        for j, r in enumerate(rows):
            lo, hi = data.x_indptr[r], data.x_indptr[r + 1]
            x[j, data.x_indices[lo:hi]] = data.x_values[lo:hi]
        return x

    def train_batch(self, rows: np.ndarray) -> float:
        if self.crash_at is not None and self.steps[0] + 1 == self.crash_at:
            raise RuntimeError("simulated kill")
        d = self.train
        x = self._dense(d, rows)
        logits = x @ self.w
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        y = np.zeros_like(p)
        for j, r in enumerate(rows):
            labs = d.y_indices[d.y_indptr[r] : d.y_indptr[r + 1]]
            y[j, labs] = 1.0 / len(labs)
        loss = float(-(y * np.log(p + 1e-12)).sum(axis=1).mean())
        self.w -= self.lr * x.T @ (p - y) / len(rows)
        self.steps += 1
        if self.nan_at is not None and self.steps[0] >= self.nan_at:
            return float("nan")
        return loss

    def predict_topk(self, data: XCData, k: int) -> np.ndarray:
        scores = self._dense(data, np.arange(data.n_points)) @ self.w
        return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int32)

    def stats(self) -> dict[str, float]:
        return {"weight_norm": float(np.linalg.norm(self.w))}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"w": self.w.copy(), "steps": self.steps.copy()}

    def load_state_dict(self, state) -> None:
        self.w = state["w"].copy()
        self.steps = state["steps"].copy()

    def is_finite(self) -> bool:
        return bool(np.isfinite(self.w).all())
