"""The pipeline's reporting layer: run publication, aggregation, plotted series and figures.

:mod:`~slide_bench.report.series` (pure transforms) and :mod:`~slide_bench.report.summary`
(curves -> summary rows) are unit-tested; :mod:`~slide_bench.report.figures` only draws;
:mod:`~slide_bench.report.runs` publishes one training job's curve. Nothing here imports
TensorFlow or Numba.
"""
