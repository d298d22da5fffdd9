# The crossover sweep (configs with a `crossover` section): SLIDE's time-to-target ratio against
# each peer and every method's step time over the label count, from the aggregated tables.


rule crossover:
    input:
        curves="results/curves.csv",
        summary="results/summary.csv",
        stats=get_dataset_stats,
        environment="results/environment.json",
    output:
        table=report(
            "results/crossover.csv",
            caption="../report/crossover-table.rst",
            category="Crossover",
            labels={"table": "one row per run and label count"},
        ),
        points="results/crossover-points.csv",
        png=report(
            "results/plots/crossover.png",
            caption="../report/crossover.rst",
            category="Crossover",
            labels={"figure": "crossover"},
        ),
        svg="results/plots/crossover.svg",
    params:
        datasets=get_crossover_datasets(),
        budgets=get_crossover_budgets(),
        settings=get_plot_settings(),
    log:
        "results/logs/crossover.log",
    benchmark:
        "results/benchmarks/crossover.tsv"
    threads: 1
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/crossover.py"
