"""MongooseNetwork: the SLIDE engine with every sampled layer maintained by a MongoosePolicy.

Integration glue until the engine calls :class:`~slide_engine.mongoose.policy.MongoosePolicy`
itself: each sampler's ``maintain`` (the engine's table phase, inside the timed ``train_batch``)
is replaced by :meth:`MongooseNetwork._maintain`, which hands the policy the layer's weights,
bias, this batch's active sets (the rows lazy Adam just updated) and, for the learnable hash, the
layer's dense inputs. Everything else (selection, kernels, Adam, evaluation) is the engine's.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np

from slide_engine.engine import SlideConfig, SlideNetwork
from slide_engine.errors import ConfigError
from slide_engine.mongoose.config import MongooseConfig
from slide_engine.mongoose.policy import MongoosePolicy

_COLUMNS = ("checks", "reinserts", "fits", "t_sched", "t_fit")
"""Curve columns added to the engine's (its ``rebuilds`` already counts MONGOOSE rebuilds)."""


class MongooseNetwork(SlideNetwork):
    """:class:`~slide_engine.engine.SlideNetwork` with drift-triggered table maintenance.

    Parameters
    ----------
    config : SlideConfig, optional
        Engine settings; the sampled layers' ``schedule`` fields are ignored.
    mongoose : MongooseConfig, optional
        Scheduler (and learnable-hash) settings applied to every sampled layer.
    seed, threads
        As for :class:`~slide_engine.engine.SlideNetwork`.
    """

    method = "slide-mongoose"

    def __init__(
        self,
        config: SlideConfig | None = None,
        mongoose: MongooseConfig | None = None,
        *,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        super().__init__(config, seed=seed, threads=threads)
        self.mongoose = mongoose if mongoose is not None else MongooseConfig()
        if not self.mongoose.learn:
            self.method = "slide-mongoose-scheduler"
        self.policies: dict[int, MongoosePolicy] = {}
        self._batch = 0

    def _build(self, n_features: int, n_labels: int, max_labels: int) -> None:
        super()._build(n_features, n_labels, max_labels)
        self.policies = {}
        for index, sampler in self._samplers.items():
            if index == 0:
                raise ConfigError("MONGOOSE maintains neuron-major layers; layer 0 is sampled")
            if self.mongoose.learn and index - 1 in self._samplers:
                raise ConfigError("the learnable hash needs the layer below to be dense")
            layer = self.layers[index]
            self.policies[index] = MongoosePolicy(
                self.mongoose, layer.w, layer.b, sampler.index, seed=self.seed + index
            )
            sampler.maintain = partial(self._maintain, index)

    def train_batch(self, rows: np.ndarray) -> float:
        """One Adam step (see :meth:`SlideNetwork.train_batch`); maintenance by the policies."""
        self._batch = int(np.asarray(rows).shape[0])
        return super().train_batch(rows)

    def _maintain(self, index: int, step: int, neuron_rows: object) -> int:
        # Replaces LayerSampler.maintain(step, neuron_rows); returns the number of full rebuilds.
        del neuron_rows  # neuron-major layers: the weight matrix itself is the neuron rows
        layer = self.layers[index]
        policy = self.policies[index]
        assert self._buffers is not None
        batch = self._batch
        if policy.config.learn:
            policy.observe(self._buffers.val[index - 1][:batch, : layer.n_in])
        ids, cnt = self._buffers.ids[index][:batch], self._buffers.cnt[index][:batch]
        sampler = self._samplers[index]
        action = policy.after_batch(step, layer.w, layer.b, ids, sampler.index, counts=cnt)
        return int(action == "rebuild")

    def stats(self) -> dict[str, float]:
        """The engine's columns plus ``checks``, ``reinserts``, ``fits``, ``t_sched``, ``t_fit``
        (since the previous call, summed over the maintained layers)."""
        out = super().stats()
        extra = dict.fromkeys(_COLUMNS, 0.0)
        for policy in self.policies.values():
            delta = policy.stats()
            for key in _COLUMNS:
                extra[key] += delta[key]
        out.update(extra)
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """The engine's state plus each policy's (sketches, dirty sets, learned map)."""
        state = super().state_dict()
        for index, policy in self.policies.items():
            state.update(policy.state_dict(f"mongoose{index}."))
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output (learned hash functions included)."""
        super().load_state_dict(state)
        for index, policy in self.policies.items():
            policy.load_state_dict(dict(state), f"mongoose{index}.")
            policy.install(self._samplers[index].index)
