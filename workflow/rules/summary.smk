# Aggregation: every curve, sidecar and benchmark record -> one tidy curve table and the
# one-row-per-run summary (final/best P@k, seconds per epoch, time to target, memory, status).


rule aggregate:
    input:
        curves=get_curves,
        sidecars=get_sidecars,
        benchmarks=get_benchmarks,
        stats=get_dataset_stats,
    output:
        curves="results/curves.csv",
        summary=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "one row per run"},
        ),
    params:
        runs=get_runs(),
        datasets=list(config["datasets"]),
        settings=get_plot_settings(),
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    threads: 1
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/aggregate.py"


rule environment:
    output:
        report(
            "results/environment.json",
            caption="../report/environment.rst",
            category="Provenance",
            labels={"record": "machine and versions"},
        ),
    log:
        "results/logs/environment.log",
    benchmark:
        "results/benchmarks/environment.tsv"
    threads: 1
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/environment.py"


rule headline:
    input:
        curves="results/curves.csv",
        summary="results/summary.csv",
    output:
        headline=report(
            "results/headline.csv",
            caption="../report/headline.rst",
            category="Headline",
            labels={"table": "SLIDE against each peer"},
        ),
        ratios=report(
            "results/headline-levels.csv",
            caption="../report/headline-levels.rst",
            category="Headline",
            labels={"table": "ratios at every level"},
        ),
        levels=report(
            "results/time-to-level.csv",
            caption="../report/time-to-level.rst",
            category="Headline",
            labels={"table": "time to every level"},
        ),
    params:
        settings=get_plot_settings(),
    log:
        "results/logs/headline.log",
    benchmark:
        "results/benchmarks/headline.tsv"
    threads: 1
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/headline.py"
