"""The core of the benchmark suite: what every method shares.

Data (:mod:`slide_bench.data`), metrics, the run log and checkpoints, the harness that times
every method's training, the CLI plumbing, the report transforms, machine probes and the bench.
Importing it is cheap and imports neither TensorFlow nor a method package: the methods
(:mod:`slide_engine`, :mod:`baselines`) import the core, never the reverse.
"""

__version__ = "0.1.0"
