"""Aggregate every run into results/curves.csv (tidy) and results/summary.csv (one row per run)."""

import json
import logging
import sys

from slide_bench.report.summary import load_run, summarize, tidy_curves

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO)

n_train = {
    dataset: json.loads(open(path).read())["train"]["points"]
    for dataset, path in zip(snakemake.params.datasets, snakemake.input.stats, strict=True)
}

records = [
    load_run(run, curve, sidecar, bench, n_train[run["dataset"]])
    for run, curve, sidecar, bench in zip(
        snakemake.params.runs,
        snakemake.input.curves,
        snakemake.input.sidecars,
        snakemake.input.benchmarks,
        strict=True,
    )
]
tidy_curves(records).to_csv(snakemake.output.curves, index=False)
summary = summarize(records, snakemake.params.settings["target"])
summary.to_csv(snakemake.output.summary, index=False, float_format="%.6g")
logging.info("%d runs, %d failed", len(summary), int((summary["status"] == "failed").sum()))
