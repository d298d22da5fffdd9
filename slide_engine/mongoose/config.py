"""MONGOOSE settings of one sampled layer, and the two pipeline presets as ``--set`` overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slide_bench.errors import ConfigError
from slide_bench.methods import METHODS, method_names

#: The MONGOOSE methods of the registry (its comparison's first method is fixed-schedule SLIDE).
VARIANTS = tuple(
    name for name in method_names("mongoose")
    if METHODS[name].settings.get("output.hash.schedule") == "mongoose"
)


@dataclass
class MongooseConfig:
    """Drift scheduler and learnable hash functions of one LSH-sampled layer."""

    #: 1-bit SimHash sketch functions per neuron over [w | b] (one uint64 word: at most 64)
    sketch_bits: int = 16
    #: flipped fraction of all sketch bits that triggers maintenance (released SLIDE variant: 0.3)
    threshold: float = 0.3
    #: iterations between checks (the reference schedule's re-insertion interval, 50)
    check_every: int = 50
    #: on trigger: full table rebuild, or re-insert only neurons touched since last hashed
    mode: Literal["rebuild", "reinsert"] = "rebuild"
    #: fit the SimHash projections on mined pairs when the scheduler fires (SimHash layers only)
    learn: bool = False
    #: recent layer inputs (queries) kept for mining; one slot per sample, newest overwrite oldest
    query_buffer: int = 256
    #: a query's top share of neurons that should be retrieved (MONGOOSE: top 0.1%)
    pos_frac: float = 0.001
    #: lower bound on that top set, so small layers (Bibtex: 159 labels) still get positives
    pos_min_k: int = 5
    #: Adam steps per fit: few, as the fit runs inside the timed train_batch, and on a trained
    #: Bibtex layer 50 steps per refit over-fitted (held-out recall fell round after round)
    fit_steps: int = 10
    #: pairs per Adam step
    fit_batch: int = 512
    #: Adam step size of the fit
    fit_lr: float = 0.01
    #: hash with sign(P) (the released code) instead of the fitted P itself
    binarize: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.sketch_bits <= 64:
            raise ConfigError(f"mongoose.sketch_bits must be in 1..64, got {self.sketch_bits}")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"mongoose.threshold must be in (0, 1], got {self.threshold}")
        if self.mode not in ("rebuild", "reinsert"):
            raise ConfigError(f"mongoose.mode must be rebuild or reinsert, got {self.mode!r}")
        positive = {
            "check_every": self.check_every,
            "query_buffer": self.query_buffer,
            "pos_min_k": self.pos_min_k,
            "fit_steps": self.fit_steps,
            "fit_batch": self.fit_batch,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"mongoose.{name} must be >= 1, got {value}")
        if not 0.0 < self.pos_frac < 1.0 or self.fit_lr <= 0.0:
            raise ConfigError("mongoose.pos_frac must be in (0, 1) and mongoose.fit_lr > 0")


def mongoose_overrides(variant: str, layer: str = "output") -> dict[str, str]:
    """``--set`` key/values that turn the SLIDE engine into a MONGOOSE pipeline method.

    Parameters
    ----------
    variant : {"slide-mongoose-scheduler", "slide-mongoose"}
        Scheduler only, or scheduler plus learnable SimHash.
    layer : str
        Config path of the sampled layer (``output`` or ``hidden.<i>``).

    Returns
    -------
    dict of str to str
        e.g. ``{"output.hash.schedule": "mongoose", "output.hash.mongoose.learn": "false"}``.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown MONGOOSE variant {variant!r}; choose from {VARIANTS}")
    # the registry names the output layer; the same settings apply to any sampled layer
    return {
        layer + key.removeprefix("output"): str(value).lower() if isinstance(value, bool)
        else str(value)
        for key, value in METHODS[variant].settings.items()
    }
