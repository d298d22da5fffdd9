"""The crossover table, its crossover points and its figure, from the aggregated tables."""

import json
import logging
import sys

import pandas as pd

from slide_bench.report.crossover import crossover_bands, crossover_points, crossover_table
from slide_bench.report.figures import crossover_figure, optimizer_note, save_figure
from slide_bench.report.series import method_styles

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO)

settings = snakemake.params.settings
label_counts = {
    dataset: json.loads(open(path).read())["train"]["labels"]
    for dataset, path in zip(snakemake.params.datasets, snakemake.input.stats, strict=True)
}
machine = json.loads(open(snakemake.input.environment).read())["machine"]
curves = pd.read_csv(snakemake.input.curves)
summary = pd.read_csv(snakemake.input.summary, keep_default_na=False, na_values=[""])
table = crossover_table(curves, summary, label_counts, settings["target"],
                        snakemake.params.budgets, machine)
table.to_csv(snakemake.output.table, index=False, float_format="%.6g")
bands = crossover_bands(table)
points = crossover_points(bands)
points.to_csv(snakemake.output.points, index=False, float_format="%.6g")
for row in bands.itertuples():
    logging.info("%s L=%d %s: median %.4g (%.4g-%.4g), %d seeds, %d finite", row.quantity,
                 row.n_labels, row.method, row.median, row.low, row.high, row.n_seeds,
                 row.n_finite)
for row in points.itertuples():
    logging.info("%s vs %s: %s", settings["target"]["method"], row.peer, row.reading)
figure = crossover_figure(bands, method_styles(settings["methods"]),
                          settings["target"]["method"], float(settings["target"]["headline"]),
                          optimizer_note(summary))
save_figure(figure, snakemake.output.png, snakemake.output.svg)
