# Figures per dataset, from the aggregated tables; each enters the report with its caption.


rule plot_dataset:
    input:
        curves="results/curves.csv",
        summary="results/summary.csv",
        headline="results/headline.csv",
        levels="results/time-to-level.csv",
    output:
        **{
            f"{figure.replace('-', '_')}_png": report(
                f"results/plots/{{dataset}}/{figure}.png",
                caption=f"../report/{figure}.rst",
                category="Figures",
                subcategory="{dataset}",
                labels={"dataset": "{dataset}", "figure": figure},
            )
            for figure in FIGURES
        },
        **{
            f"{figure.replace('-', '_')}_svg": f"results/plots/{{dataset}}/{figure}.svg"
            for figure in FIGURES
        },
    params:
        settings=get_plot_settings(),
    log:
        "results/logs/plots/{dataset}.log",
    benchmark:
        "results/benchmarks/plots/{dataset}.tsv"
    threads: 1
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/plot_dataset.py"
