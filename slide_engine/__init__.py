"""SLIDE in Numba: the engine, its LSH tables and MONGOOSE's rebuild schedules.

Importing this package is cheap and never imports TensorFlow; the engine itself lives in
:mod:`slide_engine.engine` and runs in the core's harness (:mod:`slide_bench.harness`).
"""

__version__ = "0.1.0"
