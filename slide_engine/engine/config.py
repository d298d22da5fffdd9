"""Configuration of the SLIDE engine: the network, the optimiser and each layer's hashing.

Defaults reproduce the MLSys 2020 network (sparse input -> 128 ReLU -> LSH-sampled softmax,
Adam lr 1e-4) with lazy Adam. Every field can be set from YAML or ``--set key=value`` (see
:mod:`slide_bench.cli`), e.g. ``--set output.hash.family=dwta --set adam=dense``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from slide_engine.mongoose.config import MongooseConfig


@dataclass
class HashConfig:
    """LSH tables and active-set selection of one sampled layer."""

    #: SimHash suits any input and works at the 128-wide hidden layer; DWTA is the Amazon choice
    family: Literal["simhash", "wta", "dwta", "minhash"] = "simhash"
    #: codes per table (the paper: K=9 SimHash on Delicious, K=6 DWTA in the Amazon config)
    k: int = 9
    #: tables (the paper's L=50 on every dataset)
    l: int = 50  # noqa: E741 -- the LSH literature's name for the number of tables
    #: buckets per table (2^18 in the Amazon config; SimHash K=9 addresses only 512)
    n_buckets: int = 2**18
    #: ids kept per bucket (the reference's 128)
    bucket_capacity: int = 128
    #: which ids a full bucket keeps: the reference's FIFO, or a uniform reservoir
    replacement: Literal["fifo", "reservoir"] = "fifo"
    #: order in which a build inserts the neurons: a fresh seeded shuffle per table and build
    #: (the reference's parallel insertion scatters its order too), or ascending ids (a full
    #: FIFO bucket then keeps only its highest ids)
    insert_order: Literal["random", "ascending"] = "random"
    #: how K codes form a bucket index: lossless, or the reference's 2-bit-shift overlap
    packing: Literal["concat", "reference-overlap-2bit"] = "concat"
    #: WTA/DWTA coordinates compared per code (8 = the reference's 3-bit codes)
    bin_size: int = 8
    #: active set: union of probed buckets + random top-up (the reference default), or another
    policy: Literal["union", "threshold", "vanilla", "topk-count", "random", "exact-topk"] = "union"
    #: union: top up to this many active neurons (the reference's ~1000); vanilla, topk-count,
    #: random, exact-topk: the active budget (labels included)
    min_active: int = 1000
    #: union: how the shortfall to ``min_active`` is filled: "shared" (default), a run of one
    #: fixed random permutation of the neurons from an offset drawn per batch (the reference's
    #: way: the samples of a batch share most of their top-up neurons), or "per-sample", uniform
    #: draws for each sample. Measured (docs/journal/2026-12-05-lsh-tables.md): late in the
    #: Amazon-shaped run, where the top-up binds, shared touches 15 % fewer distinct rows per
    #: batch and a step costs 6 % less; steps to the target P@1 and the Bibtex P@1 are the same
    topup: Literal["shared", "per-sample"] = "shared"
    #: union, training only: uniform neurons added to every sample's active set beyond the
    #: union of its buckets (drawn as ``topup`` draws; the active set is then at least
    #: ``max(min_active, union + topup_extra)``). Negatives from the whole label range every
    #: step, as sampled softmax has, also while the tables return one shared set (0: none)
    topup_extra: int = 0
    #: union, training only: importance-correct the softmax over the active set. The labels and
    #: the tables' neurons are a deterministic set S given the query (weight 1); the top-up is a
    #: uniform sample of R of the N - |S| other neurons, so each of its logits gets
    #: ``+ log((N - |S|) / R)`` and the softmax's normaliser is an unbiased estimate of the full
    #: one (sampled softmax's log-expected-count correction; exact for ``topup="per-sample"``,
    #: up to the run's spacing for "shared")
    topup_correct: bool = False
    #: union, training only: how the ``topup_extra`` neurons are drawn. "uniform": as ``topup``
    #: draws (then topped up to ``min_active``); "log-uniform": ``topup_extra`` draws with
    #: replacement, shared by the batch, from TF's log-uniform sampler over the labels ranked
    #: by training frequency (the sampled-softmax baseline's sampler), duplicates and each
    #: sample's own neurons dropped; ``min_active`` then applies at inference only. With
    #: ``topup_correct`` a drawn neuron's logit gets ``- log P(drawn)``,
    #: ``P = 1 - (1 - p)^topup_extra``
    topup_sampler: Literal["uniform", "log-uniform"] = "uniform"
    #: log-uniform top-up with ``topup_correct``: also give each label's logit ``- log P(drawn)``,
    #: as ``tf.nn.sampled_softmax_loss`` corrects its true classes (the labels then weigh as if
    #: drawn; rare labels' own logits are raised, so their pull on the hidden layer is smaller)
    correct_labels: bool = False
    #: union, training only: while a batch's mean pairwise query cosine (``query_cos``) is above
    #: this, skip the tables: labels plus the uniform top-up only (``max(min_active,
    #: topup_extra)`` neurons). A collapsed hidden layer sends every query to the same buckets;
    #: uniform negatives until it has diverged (1.0: never, the tables always)
    uniform_above_cos: float = 1.0
    #: union, training only: draw the ``topup_extra`` neurons only for a batch whose mean
    #: pairwise query cosine (``query_cos``) is above this (the batch then gets the plain
    #: union and ``min_active`` top-up); 0: every batch. Extra negatives while the hidden layer
    #: is collapsed, the paper's active sets once the tables tell the samples apart
    extra_above_cos: float = 0.0
    #: training only: probe the last this many of the L tables with the query minus the batch's
    #: mean query, the others with the query itself (0: the paper's hashing). ReLU activations
    #: share a large common component (a collapsed hidden layer: every query in a batch nearly
    #: parallel), so plain SimHash sends every sample to the same buckets; the centred tables
    #: find each sample's own neurons (docs/performance.md). Needs a dense layer below and a
    #: table-based policy (union, threshold, vanilla, topk-count)
    center_tables: int = 0
    #: output layer, SimHash only: hash for inner products instead of angles (Neyshabur &
    #: Srebro's simple LSH). A neuron ``x = [w, b]`` (weight row and bias) is stored under
    #: SimHash of ``[x, sqrt(M^2 - |x|^2)]`` and a query ``h`` probes with ``[h, 1, 0]``, so
    #: the neurons that share its buckets are those with the largest logit ``w.h + b``, not
    #: the smallest angle. ``M`` is the largest ``|x|`` at the last full rebuild (the first
    #: build, a redraw, or a scheduled rebuild that re-hashes a neuron grown past ``M``: that
    #: rebuild re-hashes every neuron with the new ``M``); otherwise incremental rebuilds keep
    #: ``M``. Not with ``center_tables`` or the mongoose schedule
    mips: bool = False
    #: mips: norm ranging (Yan et al. 2018): a full rebuild splits the neurons by norm into
    #: this many equal-size ranges, each hashed with its own largest norm as ``M`` (1: one
    #: ``M``; a few grown frequent labels then set it and every other neuron's transformed
    #: vector is nearly ``[0, ..., 0, 1]``: they crowd into the same buckets)
    mips_ranges: int = 1
    #: threshold policy: keep neurons found in at least this many of the L probed buckets
    threshold: int = 2
    #: table maintenance: "reference" rebuilds every ``rebuild_every_samples`` training samples
    #: (the code); "decay" rebuilds at the paper's geometrically growing intervals; "mongoose"
    #: rebuilds when the weights drifted (MONGOOSE scheduler, optionally learned SimHash; not
    #: the first layer). Intervals count samples, as the reference does, so they mean the same
    #: at any batch size (6,400 samples = 50 batches of 128 = 25 batches of 256)
    schedule: Literal["reference", "decay", "mongoose"] = "reference"
    #: reference schedule: re-hash every neuron into the tables every this many samples (the
    #: reference's Amazon config: Rehash = 6,400; 0 = never)
    rebuild_every_samples: int = 6400
    #: reference and decay schedules: draw new hash functions every this many samples (the
    #: reference's Amazon config: Rebuild = 128,000; 0 = never)
    redraw_every_samples: int = 128_000
    #: decay schedule: first interval N0 in samples (the paper's 50 iterations of 128)
    decay_first_samples: int = 6400
    #: decay schedule: growth of the interval per rebuild (the paper leaves it open)
    decay_growth: float = 1.5
    #: mongoose schedule: drift threshold, check interval, learnable hash (see MongooseConfig)
    mongoose: MongooseConfig = field(default_factory=MongooseConfig)


@dataclass
class LayerConfig:
    """A hidden ReLU layer: its width and whether its neurons are sampled by LSH."""

    #: neurons (the paper's 128)
    units: int = 128
    #: compute only LSH-selected neurons (KDD 2017 samples hidden layers; MLSys 2020 does not)
    sampled: bool = False
    #: tables and selection when ``sampled``
    hash: HashConfig = field(default_factory=HashConfig)


@dataclass
class OutputConfig:
    """The softmax output layer (one neuron per label)."""

    #: compute only LSH-selected neurons plus, in training, the true labels (the paper's choice)
    sampled: bool = True
    #: tables and selection when ``sampled``
    hash: HashConfig = field(default_factory=HashConfig)


def _default_hidden() -> list[LayerConfig]:
    return [LayerConfig(units=128, sampled=False)]


@dataclass
class SlideConfig:
    """The whole engine: layers, initialisation, Adam, evaluation memory."""

    #: hidden layers from input to output (the paper: one dense 128-unit ReLU layer)
    hidden: list[LayerConfig] = field(default_factory=_default_hidden)
    #: the softmax output layer (the paper: LSH-sampled)
    output: OutputConfig = field(default_factory=OutputConfig)
    #: weight init: N(0, init_std^2) as the reference C++, or the TF baselines' truncated normal
    init: Literal["normal", "truncated_normal"] = "normal"
    #: std of the "normal" init (the reference's 0.01)
    init_std: float = 0.01
    #: Adam step size (the paper's 1e-4, tuned within 1e-5..1e-3)
    lr: float = 1e-4
    #: linear learning-rate warm-up: step t uses ``lr * min(1, t / lr_warmup_steps)`` (0: none)
    lr_warmup_steps: int = 0
    #: Adam first-moment decay (standard)
    beta1: float = 0.9
    #: Adam second-moment decay (standard)
    beta2: float = 0.999
    #: Adam denominator guard (standard)
    eps: float = 1e-8
    #: "lazy" updates only rows that got gradient (per-row bias correction): cost scales with
    #: the active set, as the paper describes; "dense" updates every row every batch, as the code
    adam: Literal["lazy", "dense"] = "lazy"
    #: training of a sampled layer on a dense input (the paper's output layer): "hogwild" works
    #: per (sample, neuron) pair and adds each sample's gradient into a shared accumulator without
    #: locks (the paper); "rows" works per distinct neuron row (forward, gradient, back-propagated
    #: delta and Adam step with each row read once; no accumulator, no race, sums in an order
    #: independent of the thread count; lazy Adam only; see slide_engine.engine.rowwise); "auto"
    #: (default): "rows" with lazy Adam, "hogwild" with dense Adam (see ``accumulate_mode``)
    accumulate: Literal["auto", "hogwild", "rows"] = "auto"
    #: scratch memory for dense evaluation scores (chunks of test points are scored at once)
    eval_chunk_mb: int = 256

    def __post_init__(self) -> None:
        if not all(0 < v < float("inf") for v in (self.lr, self.init_std, self.eps)):
            raise ValueError("lr, init_std and eps must be positive (and finite)")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise ValueError("beta1 and beta2 must be in [0, 1)")
        if self.accumulate == "rows" and self.adam != "lazy":
            raise ValueError(
                "accumulate='rows' updates only touched rows: it needs adam='lazy' "
                "(accumulate='auto', the default, uses 'hogwild' with adam='dense')"
            )
        if self.lr_warmup_steps < 0:
            raise ValueError("lr_warmup_steps must be >= 0")
        if self.eval_chunk_mb < 1:
            raise ValueError("eval_chunk_mb must be >= 1")
        for i, layer in enumerate(self.hidden):
            if layer.units < 1:
                raise ValueError(f"hidden[{i}].units must be >= 1")
        specs = [*self.hidden, self.output]
        names = [*(f"hidden[{i}]" for i in range(len(self.hidden))), "output"]
        for i, spec in enumerate(specs):
            _check_hash(names[i], spec, dense_below=i > 0 and not specs[i - 1].sampled,
                        is_output=i == len(specs) - 1)
            if spec.sampled and spec.hash.mips:
                _check_mips(names[i], spec.hash, output_above_hidden=0 < i == len(specs) - 1)

    @property
    def accumulate_mode(self) -> Literal["hogwild", "rows"]:
        """``accumulate`` with ``"auto"`` resolved: ``"rows"`` for lazy Adam, else ``"hogwild"``."""
        if self.accumulate == "auto":
            return "rows" if self.adam == "lazy" else "hogwild"
        return self.accumulate


def _check_hash(name: str, spec: LayerConfig | OutputConfig, dense_below: bool,
                is_output: bool) -> None:
    """Raise ValueError for hash settings of layer ``name`` that cannot work together.

    ``dense_below``: the layer below exists and is dense (the input of a centred table or of the
    uniform phase's query cosine); ``is_output``: the layer is the output layer.
    """
    h = spec.hash
    if h.topup_extra < 0:
        raise ValueError(f"{name}.hash.topup_extra must be >= 0")
    if not 0.0 <= h.uniform_above_cos <= 1.0:
        raise ValueError(f"{name}.hash.uniform_above_cos must be in [0, 1]")
    if not 0.0 <= h.extra_above_cos <= 1.0:
        raise ValueError(f"{name}.hash.extra_above_cos must be in [0, 1]")
    if spec.sampled and h.extra_above_cos > 0.0 and not dense_below:
        raise ValueError(f"{name}.hash.extra_above_cos needs a dense layer below")
    post = h.topup_extra > 0 or h.topup_correct or h.uniform_above_cos < 1.0
    if h.topup_sampler == "log-uniform" and (h.topup_extra < 1 or not is_output):
        raise ValueError(
            f"{name}.hash.topup_sampler='log-uniform' ranks labels: the output "
            "layer only, with topup_extra >= 1"
        )
    if spec.sampled and post and h.policy != "union":
        raise ValueError(
            f"{name}.hash.topup_extra, topup_correct and uniform_above_cos need the "
            f"union policy, not {h.policy!r}"
        )
    if spec.sampled and h.uniform_above_cos < 1.0 and not dense_below:
        raise ValueError(f"{name}.hash.uniform_above_cos needs a dense layer below")
    n_center = h.center_tables
    if not spec.sampled or n_center == 0:
        return
    if not 0 <= n_center <= h.l:
        raise ValueError(f"{name}.hash.center_tables must be in [0, l={h.l}]")
    if not dense_below:
        raise ValueError(f"{name}.hash.center_tables needs a dense layer below")
    if h.policy in ("random", "exact-topk"):
        raise ValueError(
            f"{name}.hash.center_tables needs a table-based policy, not {h.policy!r}"
        )


def _check_mips(name: str, h: HashConfig, output_above_hidden: bool) -> None:
    """Raise ValueError when ``h.mips`` cannot work: SimHash on the output layer above a
    hidden layer only, not with centred tables or the mongoose schedule."""
    if h.family != "simhash":
        raise ValueError(
            f"{name}.hash.mips (inner-product hashing) is supported by family 'simhash' "
            f"only, not {h.family!r}: the transform turns inner products into angles, "
            "which SimHash hashes; WTA, DWTA and MinHash do not"
        )
    if not output_above_hidden:
        raise ValueError(f"{name}.hash.mips: the output layer above a hidden layer only")
    if h.center_tables:
        raise ValueError(f"{name}.hash.mips does not combine with center_tables")
    if h.schedule == "mongoose":
        raise ValueError(f"{name}.hash.mips does not combine with the mongoose schedule")
    if h.mips_ranges < 1:
        raise ValueError(f"{name}.hash.mips_ranges must be >= 1")
