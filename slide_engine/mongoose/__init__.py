"""MONGOOSE (Chen et al., ICLR 2021) for the SLIDE engine: drift-triggered table maintenance."""

from slide_engine.mongoose.scheduler import Decision, DriftScheduler

__all__ = ["Decision", "DriftScheduler"]
