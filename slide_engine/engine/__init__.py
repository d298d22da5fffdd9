"""The SLIDE engine: LSH-sampled sparse training of wide softmax networks, in Numba."""

from slide_engine.engine.config import HashConfig, LayerConfig, OutputConfig, SlideConfig
from slide_engine.engine.network import SlideNetwork

__all__ = ["HashConfig", "LayerConfig", "OutputConfig", "SlideConfig", "SlideNetwork"]
