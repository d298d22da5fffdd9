"""Draw the five figures of one dataset from the aggregated tables."""

import sys

import pandas as pd

from slide_bench.report.figures import (
    convergence_figure,
    sampling_figure,
    save_figure,
    thread_scaling_figure,
    time_to_accuracy_figure,
)
from slide_bench.report.series import method_styles

sys.stderr = open(snakemake.log[0], "w")

dataset = snakemake.wildcards.dataset


def read(path):
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return table[table["dataset"].astype(str) == dataset]


curves = read(snakemake.input.curves)
summary = read(snakemake.input.summary)
headline = read(snakemake.input.headline)
levels = read(snakemake.input.levels)
styles = method_styles(snakemake.params.settings["methods"])
verdicts = [f"{row.peer}: {row.verdict}" for row in headline.itertuples()]
out = snakemake.output

save_figure(convergence_figure(curves, summary, styles, dataset, "train_seconds", verdicts),
            out.convergence_time_png, out.convergence_time_svg)
save_figure(convergence_figure(curves, summary, styles, dataset, "iteration"),
            out.convergence_iter_png, out.convergence_iter_svg)
save_figure(thread_scaling_figure(summary, styles, dataset),
            out.thread_scaling_png, out.thread_scaling_svg)
save_figure(time_to_accuracy_figure(levels, summary, styles, dataset),
            out.time_to_accuracy_png, out.time_to_accuracy_svg)
save_figure(sampling_figure(curves, styles, dataset),
            out.sampling_png, out.sampling_svg)
