"""Draw one figure of one dataset (PNG and SVG) from the aggregated tables it needs."""

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
styles = method_styles(snakemake.params.settings["methods"])


def read(table):
    frame = pd.read_csv(snakemake.input[table], keep_default_na=False, na_values=[""])
    return frame[frame["dataset"].astype(str) == dataset]


def convergence_time():
    verdicts = [f"{row.peer}: {row.verdict}" for row in read("headline").itertuples()]
    return convergence_figure(read("curves"), read("summary"), styles, dataset, "train_seconds",
                              verdicts)


DRAW = {
    "convergence-time": convergence_time,
    "convergence-iter": lambda: convergence_figure(read("curves"), read("summary"), styles,
                                                   dataset, "iteration"),
    "thread-scaling": lambda: thread_scaling_figure(read("summary"), styles, dataset),
    "time-to-accuracy": lambda: time_to_accuracy_figure(read("levels"), read("summary"), styles,
                                                        dataset),
    "sampling": lambda: sampling_figure(read("curves"), styles, dataset),
}

save_figure(DRAW[snakemake.params.figure](), snakemake.output.png, snakemake.output.svg)
