"""Draw the five figures of one dataset from results/curves.csv and results/summary.csv."""

import sys

import pandas as pd

from slide_engine.report.figures import (
    convergence_figure,
    sampling_figure,
    save_figure,
    thread_scaling_figure,
    time_to_accuracy_figure,
)
from slide_engine.report.series import method_styles

sys.stderr = open(snakemake.log[0], "w")

dataset = snakemake.wildcards.dataset
curves = pd.read_csv(snakemake.input.curves)
summary = pd.read_csv(snakemake.input.summary, keep_default_na=False, na_values=[""])
curves = curves[curves["dataset"].astype(str) == dataset]
summary = summary[summary["dataset"].astype(str) == dataset]
settings = snakemake.params.settings
styles = method_styles(settings["methods"])
target = settings["target"]
# speed-ups over the reference and the other baselines that ran (time to target ratios)
baselines = [m for m in [target["reference"], *target["compare_to"]] if m in styles]
baselines = list(dict.fromkeys(baselines))
note = settings["target_note"]
out = snakemake.output

save_figure(convergence_figure(curves, summary, styles, dataset, "train_seconds", note, baselines),
            out.convergence_time_png, out.convergence_time_svg)
save_figure(convergence_figure(curves, summary, styles, dataset, "iteration", note),
            out.convergence_iter_png, out.convergence_iter_svg)
save_figure(thread_scaling_figure(summary, styles, dataset),
            out.thread_scaling_png, out.thread_scaling_svg)
save_figure(time_to_accuracy_figure(summary, styles, dataset),
            out.time_to_accuracy_png, out.time_to_accuracy_svg)
save_figure(sampling_figure(curves, styles, dataset),
            out.sampling_png, out.sampling_svg)
