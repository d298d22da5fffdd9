"""The pipeline's reporting layer: run publication, aggregation, plotted series and figures.

:mod:`~slide_engine.report.series` (pure transforms) and :mod:`~slide_engine.report.summary`
(curves -> summary rows) are unit-tested; :mod:`~slide_engine.report.figures` only draws;
:mod:`~slide_engine.report.runs` publishes one training job's curve. Nothing here imports
TensorFlow or Numba.
"""
