"""Persistence of :class:`~slide_engine.engine.network.SlideNetwork`: its state as arrays (what
the harness checkpoints), verified save and load, and training in the shared harness.

A mixin over the network's arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from os import PathLike
from typing import Any, Self

import numpy as np

from slide_bench.checkpoint import load_checkpoint, save_checkpoint
from slide_bench.cli import from_dict
from slide_bench.data import XCData
from slide_bench.errors import ConfigError
from slide_bench.harness import RunResult, RunSettings
from slide_bench.harness import run as harness_run
from slide_engine.engine.config import SlideConfig

__all__ = ["Persistence"]


class Persistence:
    """State arrays, checkpoints of a whole network, and :meth:`fit` in the harness."""

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
    def load(cls, path: str | PathLike[str], threads: int = 1) -> Self:
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
