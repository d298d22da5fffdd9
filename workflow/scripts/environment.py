"""Record the machine and software versions the results were produced with."""

import sys

import psutil

from slide_bench.runlog import provenance, write_sidecar

sys.stderr = open(snakemake.log[0], "w")

record = provenance(snakemake.config, threads=psutil.cpu_count(logical=True), device="cpu")
record["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
record["physical_cores"] = psutil.cpu_count(logical=False)
write_sidecar(snakemake.output[0], {"machine": record, "config": snakemake.config})
