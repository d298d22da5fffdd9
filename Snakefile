# The benchmark pipeline: prepare datasets, train every grid point, aggregate, plot, report.
# Experiment settings: config/config.yaml (schema: workflow/schemas/config.schema.yaml).
# Runtime settings: profiles/default (used automatically), profiles/slurm (a SLURM cluster).
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/crossover.smk"


# Under a cluster executor (profiles/slurm) these run on the submitting host instead of as
# cluster jobs: they read small tables and write tables or a figure, in seconds (the figure
# rules of workflow/rules/plots.smk are local too). Data preparation, training and the
# environment record (it describes the machine the jobs run on) stay cluster jobs.
localrules:
    aggregate,
    crossover,
    headline,


rule all:
    input:
        get_final_outputs(),
    default_target: True
