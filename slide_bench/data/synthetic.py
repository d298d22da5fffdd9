"""Synthetic extreme-classification data that is realistic in shape and learnable.

Model (all sizes are :class:`SynthSpec` fields):

- Label popularity follows a power law by rank, ``p(r) ~ (r + 1) ** -label_exponent``; ranks are
  assigned to label ids by a random permutation (XC label ids are not ordered by frequency).
  A point's number of distinct labels is ``1 + NegBin`` with mean ``labels_per_point``; labels
  are drawn from the popularity law without repetition. So a few head labels have thousands of
  points and the long tail has 1-5.
- Words: a background Zipf law over features (``feature_exponent``) and, for each label, a
  signature of ``signature_size`` features drawn from a flatter law (``signature_exponent``: topical
  words are rarer than stop words). Labels with consecutive ids form clusters of
  ``cluster_size`` related labels: a share ``shared_words`` of each signature's slots holds the
  cluster's common words, so related labels are hard to tell apart. Slot j of every signature
  has weight ``1 / (j + 1)``.
- Co-occurrence: each label of a point after its first comes, with probability
  ``topic_labels``, from the first label's cluster (by popularity within it), otherwise from the
  popularity law. Labels that co-occur then also share words: a point's hardest negatives are
  its labels' siblings, which is what makes table-chosen negatives worth more than uniform
  ones (docs/pipeline.md, "Synthetic data against real data").
- A point's tokens come, with probability ``signal``, from the signature of one of its labels
  (picked uniformly) and otherwise from the background; tokens are drawn until the point has
  its target number of distinct features (``1 + NegBin`` with mean ``features_per_point``).
- Values are tf-idf: ``(1 + log tf) * log((1 + n_train) / (1 + df))`` with df from the train
  split, each row L2-normalised and rounded to multiples of 1e-6 (so the text files written with
  ``%.6g`` re-read bit-exactly); or, with ``values="binary"``, 1 for every present feature
  (Bibtex's features).

Labels are learnable from the signature words, yet the background noise, shared signature words
and the tail labels keep P@1 well below 1. The train split is points ``0 .. n_train - 1`` and
the test split the next ``n_test``, drawn from the same law; both come out in random order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from slide_bench.data._synth_kernels import sample_points, tfidf_rows
from slide_bench.data.xcdata import XCData
from slide_bench.errors import ConfigError

_VALUE_SCALE = 1e6


@dataclass(frozen=True)
class SynthSpec:
    """Sizes and shape parameters of a synthetic dataset (see the module docstring)."""

    n_train: int
    n_test: int
    n_features: int  # D
    n_labels: int  # L
    labels_per_point: float  # mean distinct labels per point (>= 1)
    features_per_point: float  # mean distinct features per point (>= 1)
    label_exponent: float = 0.8  # label popularity ~ rank^-a; smaller = flatter head
    feature_exponent: float = 1.0  # background word frequency ~ rank^-b (Zipf's law)
    signature_size: int = 12  # signature words per label
    signature_exponent: float = 0.3  # signature words ~ rank^-c: mostly mid-frequency words
    signal: float = 0.3  # share of a point's tokens from its labels' signatures
    cluster_size: int = 10  # labels with consecutive ids form a cluster of related labels
    shared_words: float = 0.7  # share of signature slots taken from the cluster's common words
    count_dispersion: float = 2.0  # negative-binomial shape of per-point counts (smaller = wider)
    # share of a point's labels after its first drawn from the first one's cluster (labels that
    # co-occur are then also the ones that share words: each other's hardest negatives)
    topic_labels: float = 0.0
    feature_dispersion: float = 0.0  # NegBin shape of the feature counts; 0: count_dispersion
    values: str = "tfidf"  # "tfidf" (L2-normalised rows) or "binary" (every present feature 1)

    def check(self) -> None:
        """Raise :class:`ConfigError` on an impossible combination of values."""
        problems = []
        if min(self.n_train, self.n_test) < 1 or min(self.n_features, self.n_labels) < 1:
            problems.append("n_train, n_test, n_features and n_labels must be >= 1")
        if not 1 <= self.labels_per_point <= self.n_labels / 2:
            problems.append("labels_per_point must be in [1, n_labels / 2]")
        if not 1 <= self.features_per_point <= self.n_features / 4:
            problems.append("features_per_point must be in [1, n_features / 4]")
        if not 0 <= self.signal <= 1:
            problems.append("signal must be in [0, 1]")
        if self.signature_size < 1 or self.cluster_size < 1 or self.count_dispersion <= 0:
            problems.append("signature_size, cluster_size must be >= 1, count_dispersion > 0")
        if not 0 <= self.shared_words <= 1:
            problems.append("shared_words must be in [0, 1]")
        if not 0 <= self.topic_labels <= 1 or self.feature_dispersion < 0:
            problems.append("topic_labels must be in [0, 1], feature_dispersion >= 0")
        if self.values not in ("tfidf", "binary"):
            problems.append(f"values must be 'tfidf' or 'binary', not {self.values!r}")
        if min(self.label_exponent, self.feature_exponent, self.signature_exponent) < 0:
            problems.append("exponents must be >= 0")
        if problems:
            raise ConfigError("invalid synthetic spec: " + "; ".join(problems))


# the generator's mechanisms as calibrated against the real Bibtex (compare-real): a point's
# labels mostly come from one cluster, whose members share most of their signature words
# (``shared_words``, on by default), so co-occurring labels are each other's hard negatives.
# The larger presets inherit it (their sizes and tf-idf values stay their own)
CALIBRATED: dict[str, float] = {"topic_labels": 0.8}

PRESETS: dict[str, SynthSpec] = {
    # seconds; for CI and unit tests
    "tiny": SynthSpec(
        n_train=2_000, n_test=500, n_features=2_000, n_labels=500,
        labels_per_point=3.0, features_per_point=30.0, label_exponent=0.7,
    ),
    # the pipeline's main dataset: an output layer wide enough for sparse training to matter,
    # small enough for the whole default pipeline to run in minutes on 2 cores
    "default": SynthSpec(
        n_train=25_000, n_test=5_000, n_features=30_000, n_labels=30_000,
        labels_per_point=5.0, features_per_point=60.0, label_exponent=0.8, **CALIBRATED,
    ),
    # the twin of the real Bibtex (split 1): its sizes, binary features, its label and feature
    # statistics and its label co-occurrence; `python -m slide_bench.data compare-real`
    # measures both side by side (docs/pipeline.md)
    "bibtex-like": SynthSpec(
        n_train=4_880, n_test=2_515, n_features=1_836, n_labels=159,
        labels_per_point=2.4, features_per_point=68.7, label_exponent=0.7, signal=0.09,
        count_dispersion=1.3, feature_dispersion=4.0, values="binary", **CALIBRATED,
    ),
    # sizes of Amazon-670K (slide-facts.md); ~75 features per point as in the BoW release
    "amazon670k-like": SynthSpec(
        n_train=490_449, n_test=153_025, n_features=135_909, n_labels=670_091,
        labels_per_point=5.45, features_per_point=75.0, label_exponent=0.6, **CALIBRATED,
    ),
    # sizes of Delicious-200K (slide-facts.md); features per point is our assumption
    "delicious200k-like": SynthSpec(
        n_train=196_606, n_test=100_095, n_features=782_585, n_labels=205_443,
        labels_per_point=75.54, features_per_point=300.0, label_exponent=0.7, **CALIBRATED,
    ),
}  # fmt: skip


def resolve_spec(
    preset_or_spec: str | SynthSpec, overrides: dict[str, str] | None = None
) -> SynthSpec:
    """Return a checked spec from a preset name or a spec, with ``key=value`` overrides applied.

    Raises
    ------
    ConfigError
        Unknown preset or field, a value that does not parse, or an impossible spec.
    """
    if isinstance(preset_or_spec, SynthSpec):
        spec = preset_or_spec
    elif preset_or_spec in PRESETS:
        spec = PRESETS[preset_or_spec]
    else:
        raise ConfigError(
            f"unknown synthetic preset {preset_or_spec!r}; choose one of {', '.join(PRESETS)}"
        )
    types = {f.name: f.type for f in dataclasses.fields(SynthSpec)}
    changes = {}
    for key, raw in (overrides or {}).items():
        if key not in types:
            raise ConfigError(f"unknown synthetic spec field {key!r}; fields: {', '.join(types)}")
        try:
            if types[key] == "str":
                changes[key] = raw
            else:
                changes[key] = int(raw.replace("_", "")) if types[key] == "int" else float(raw)
        except ValueError as err:
            raise ConfigError(f"{key}={raw!r}: expected a {types[key]}") from err
    spec = dataclasses.replace(spec, **changes)
    spec.check()
    return spec


def _power_cdf(n: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


def _cluster_cdf(label_cdf: np.ndarray, label_of_rank: np.ndarray, size: int) -> np.ndarray:
    """Cumulative popularity of each label within its cluster of ``size`` consecutive ids."""
    weight = np.empty(label_cdf.size)
    weight[label_of_rank] = np.diff(label_cdf, prepend=0.0)
    starts = np.arange(0, weight.size, size)
    run = np.cumsum(weight)
    before = np.concatenate(([0.0], run[starts[1:] - 1]))  # mass of the earlier clusters
    cluster = np.arange(weight.size) // size
    ends = np.minimum(starts + size, weight.size) - 1
    cdf = (run - before[cluster]) / (run[ends] - before)[cluster]
    cdf[ends] = 1.0
    return cdf


def _counts(rng: np.random.Generator, n: int, mean: float, shape: float, cap: int) -> np.ndarray:
    """Per-point counts ``1 + NegBin(shape, mean - 1)`` clipped to ``cap``; int64, shape (n,)."""
    extra = mean - 1.0
    if extra <= 0:
        return np.ones(n, dtype=np.int64)
    draws = rng.negative_binomial(shape, shape / (shape + extra), size=n)
    return np.minimum(1 + draws.astype(np.int64), cap)


def generate(preset_or_spec: str | SynthSpec, seed: int) -> tuple[XCData, XCData]:
    """Generate a synthetic train/test pair.

    Parameters
    ----------
    preset_or_spec : str or SynthSpec
        A name in :data:`PRESETS` or a spec.
    seed : int
        Everything is a deterministic function of (spec, seed), independent of thread count.

    Returns
    -------
    train, test : XCData
        ``spec.n_train`` and ``spec.n_test`` points in random order (no shuffle needed).
    """
    spec = resolve_spec(preset_or_spec)
    rng = np.random.default_rng(seed)
    d, l_ = spec.n_features, spec.n_labels
    label_of_rank = rng.permutation(l_).astype(np.int32)
    feature_of_rank = rng.permutation(d).astype(np.int32)
    label_cdf = _power_cdf(l_, spec.label_exponent)
    background_cdf = _power_cdf(d, spec.feature_exponent)
    word_cdf = _power_cdf(d, spec.signature_exponent)
    shape = (l_, spec.signature_size)
    own = np.searchsorted(word_cdf, rng.random(shape), side="right")
    n_clusters = -(-l_ // spec.cluster_size)
    common = np.searchsorted(word_cdf, rng.random((n_clusters, spec.signature_size)), side="right")
    shared = rng.random(shape) < spec.shared_words
    cluster = np.arange(l_) // spec.cluster_size
    signatures = np.ascontiguousarray(
        feature_of_rank[np.where(shared, common[cluster], own)], dtype=np.int32
    )
    slot_cdf = _power_cdf(spec.signature_size, 1.0)
    cluster_cdf = _cluster_cdf(label_cdf, label_of_rank, spec.cluster_size)
    stream_seed = np.uint64(rng.integers(2**63))

    n = spec.n_train + spec.n_test
    n_labels = _counts(rng, n, spec.labels_per_point, spec.count_dispersion, l_ // 2)
    dispersion = spec.feature_dispersion or spec.count_dispersion
    n_feats = _counts(rng, n, spec.features_per_point, dispersion, d // 4)
    splits = []
    first = 0
    for size in (spec.n_train, spec.n_test):
        y_indptr = np.zeros(size + 1, dtype=np.int64)
        x_indptr = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(n_labels[first : first + size], out=y_indptr[1:])
        np.cumsum(n_feats[first : first + size], out=x_indptr[1:])
        y_indices = np.empty(y_indptr[-1], dtype=np.int32)
        x_indices = np.empty(x_indptr[-1], dtype=np.int32)
        x_tf = np.empty(x_indptr[-1], dtype=np.float32)
        x_count = np.empty(size, dtype=np.int64)
        sample_points(
            stream_seed, first, y_indptr, x_indptr, y_indices, x_indices, x_tf, x_count,
            label_cdf, label_of_rank, signatures, slot_cdf, background_cdf, feature_of_rank,
            spec.signal, cluster_cdf, spec.cluster_size, spec.topic_labels, d,
        )  # fmt: skip
        if np.any(x_count < n_feats[first : first + size]):  # budget ran out: drop unset slots
            keep = np.arange(x_indices.size) - np.repeat(x_indptr[:-1], np.diff(x_indptr))
            keep = keep < np.repeat(x_count, np.diff(x_indptr))
            x_indices, x_tf = x_indices[keep], x_tf[keep]
            x_indptr[1:] = np.cumsum(x_count)
        splits.append((x_indptr, x_indices, x_tf, y_indptr, y_indices))
        first += size
    df = np.bincount(splits[0][1], minlength=d)
    idf = np.log((1.0 + spec.n_train) / (1.0 + df))
    idf = np.maximum(idf, 0.0) + 1.0
    out = []
    for x_indptr, x_indices, x_tf, y_indptr, y_indices in splits:
        if spec.values == "binary":
            values = np.ones(x_indices.size, dtype=np.float32)
        else:
            values = tfidf_rows(x_indptr, x_indices, x_tf, idf, _VALUE_SCALE)
        out.append(XCData(x_indptr, x_indices, values, y_indptr, y_indices, d, l_))
    return out[0], out[1]
