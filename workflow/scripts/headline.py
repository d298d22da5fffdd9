"""The headline (SLIDE against each peer), its ratios at every level and every method's time to
every level, from results/curves.csv and results/summary.csv."""

import logging
import sys

import pandas as pd

from slide_bench.report.headline import headline_tables

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO)

curves = pd.read_csv(snakemake.input.curves)
summary = pd.read_csv(snakemake.input.summary, keep_default_na=False, na_values=[""])
head, ratios, levels = headline_tables(curves, summary, snakemake.params.settings["target"])
head.to_csv(snakemake.output.headline, index=False, float_format="%.4g")
ratios.to_csv(snakemake.output.ratios, index=False, float_format="%.4g")
levels.to_csv(snakemake.output.levels, index=False, float_format="%.4g")
for row in head.itertuples():
    logging.info("%s vs %s: %s", row.dataset, row.peer, row.verdict)
