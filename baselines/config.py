"""Configuration of the TensorFlow baselines: one dataclass of defaults, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BaselineConfig"]


@dataclass
class BaselineConfig:
    """Network, optimiser and softmax settings of a TensorFlow baseline run.

    Every default mirrors the SLIDE engine's default network (``slide_engine.engine.config``) so
    that the comparison differs only in how the output layer is computed. Set from YAML or
    ``--set key=value``; invalid values raise ``ValueError`` (the CLI reports a ConfigError).
    """

    #: "full": softmax over all labels; "sampled": sampled softmax (tf.nn.sampled_softmax_loss)
    model: Literal["full", "sampled"] = "full"
    #: "gpu" without a visible GPU is an error (exit 3), never a silent CPU run
    device: Literal["cpu", "gpu"] = "cpu"
    #: hidden width of the paper's network
    hidden: int = 128
    #: "normal": N(0, init_std^2) as the reference C++; "truncated_normal": std
    #: 2/sqrt(fan_in + fan_out) cut at 2 std, as the published TF baselines (biases alike)
    init: Literal["normal", "truncated_normal"] = "normal"
    #: std of the "normal" init (the reference's 0.01)
    init_std: float = 0.01
    #: Adam step size (the paper's 1e-4, tuned within 1e-5..1e-3)
    lr: float = 1e-4
    #: Adam first-moment decay (standard)
    beta1: float = 0.9
    #: Adam second-moment decay (standard)
    beta2: float = 0.999
    #: Adam denominator guard (standard)
    eps: float = 1e-8
    #: "dense": every row every step (what TF/Keras Adam does, also for sparse gradients);
    #: "lazy": only rows that got gradient, each with its own step count (the engine's default)
    adam: Literal["dense", "lazy"] = "dense"
    #: "sparse": label ids (the fair baseline); "dense-float64": the published script's dense
    #: float64 [batch, L] target built in Python per batch inside the timed region (full only)
    label_feeding: Literal["sparse", "dense-float64"] = "sparse"
    #: sampled classes as a fraction of L (the paper: 10%, and says 20% was needed)
    sample_fraction: float = 0.1
    #: sampled classes as a count; overrides sample_fraction when > 0
    num_sampled: int = 0
    #: candidate sampler; log-uniform is applied over labels ranked by training frequency
    sampler: Literal["log-uniform", "uniform", "unigram"] = "log-uniform"
    #: "all": every label of a point in the sampled softmax, target 1/|y| (as full softmax and
    #: the engine); "one": one label drawn per point and step (the paper's num_true=1 feed)
    sampled_labels: Literal["all", "one"] = "all"
    #: scratch memory for dense evaluation scores (as the engine: chunks of test points at once)
    eval_chunk_mb: int = 256

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.eval_chunk_mb < 1:
            raise ValueError("hidden and eval_chunk_mb must be >= 1")
        if not 0.0 < self.sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction={self.sample_fraction} must be in (0, 1]")
        if self.num_sampled < 0:
            raise ValueError(f"num_sampled={self.num_sampled} must be >= 0")
        if not all(0 < v < float("inf") for v in (self.lr, self.init_std, self.eps)):
            raise ValueError("lr, init_std and eps must be positive (and finite)")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise ValueError("beta1 and beta2 must be in [0, 1)")
        if self.label_feeding == "dense-float64" and self.model != "full":
            raise ValueError(
                "label_feeding=dense-float64 reproduces the full-softmax baseline; "
                "use it with model=full"
            )

    def n_sampled(self, n_labels: int) -> int:
        """Number of sampled classes for ``n_labels`` classes (at least 1, at most all)."""
        count = self.num_sampled or round(self.sample_fraction * n_labels)
        return int(min(max(count, 1), n_labels))
