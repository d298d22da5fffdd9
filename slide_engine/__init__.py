"""SLIDE in Numba, and the common layer of the benchmark suite.

Importing this package is cheap and never imports TensorFlow: the data layer
(:mod:`slide_engine.data`), metrics, run log and harness are shared with :mod:`baselines`; the
engine itself lives in :mod:`slide_engine.engine`.
"""

__version__ = "0.1.0"
