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

The class is this module (construction, ``prepare``, ``warmup``, buffers) plus one mixin per
concern over the same arrays: the training step (:mod:`~slide_engine.engine.step`), statistics
and instrumentation (:mod:`~slide_engine.engine.instrumentation`), inference
(:mod:`~slide_engine.engine.predict`) and persistence (:mod:`~slide_engine.engine.persistence`).
"""

from __future__ import annotations

import copy

import numba
import numpy as np

from slide_bench.data import XCData
from slide_bench.errors import ConfigError
from slide_engine.engine.buffers import BatchBuffers
from slide_engine.engine.config import LayerConfig, OutputConfig, SlideConfig
from slide_engine.engine.instrumentation import Instrumentation
from slide_engine.engine.params import LayerParams, init_layer
from slide_engine.engine.persistence import Persistence
from slide_engine.engine.predict import Inference
from slide_engine.engine.rowwise import pair_buffers
from slide_engine.engine.sampling import LayerSampler
from slide_engine.engine.step import TrainingStep
from slide_engine.engine.threads import thread_budget

__all__ = ["SlideNetwork"]

class SlideNetwork(TrainingStep, Instrumentation, Inference, Persistence):
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
        for index, sampler in self._samplers.items():
            sampler.neuron_bias = lambda i=index: self.layers[i].b
        with thread_budget(self.threads):
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

        When a batch's query cosine decides the active set (``uniform_above_cos`` or
        ``extra_above_cos`` strictly inside (0, 1)), two probes run, one on each side of it.

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
        data = _probe_data(n)
        order = np.arange(data.n_points)
        for config in _probe_configs(self.config, n):
            probe = SlideNetwork(config, seed=self.seed, threads=self.threads)
            probe.prepare(data)
            for _ in range(2):  # step 1 rebuilds the tables, step 2 redraws the hash functions
                probe.train_batch(order)
            probe.predict_topk(data, 1)
            if probe._samplers:
                probe.predict_topk_lsh(data, 1)

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


def _probe_configs(config: SlideConfig, batch: int) -> list[SlideConfig]:
    # the probe, and when a batch's query cosine decides the active set (a threshold strictly
    # inside (0, 1)), one probe on each side of it: the probe's own cosine takes one branch only,
    # and the kernels of the other would compile inside the first timed steps that take it
    probe = _probe_config(config, batch)
    hashes = [spec.hash for spec in [*probe.hidden, probe.output]]
    if not any(0.0 < h.uniform_above_cos < 1.0 or 0.0 < h.extra_above_cos < 1.0 for h in hashes):
        return [probe]
    below = copy.deepcopy(probe)
    for h in hashes:  # every batch above: the uniform phase if it is on, the draws every batch
        if h.uniform_above_cos < 1.0:
            h.uniform_above_cos = 0.0
        h.extra_above_cos = 0.0
    for spec in [*below.hidden, below.output]:  # no batch above (0.0 keeps "draws always")
        spec.hash.uniform_above_cos = 1.0
        spec.hash.extra_above_cos = 1.0 if spec.hash.extra_above_cos > 0.0 else 0.0
    return [probe, below]


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
