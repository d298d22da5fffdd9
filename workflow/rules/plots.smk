# Figures per dataset, one rule per figure, each from the aggregated tables it draws (common.smk,
# FIGURE_TABLES); each figure enters the report with its caption. Local rules: they only read
# small tables and draw, in seconds, so a cluster executor runs them on the submitting host.


for _figure in FIGURES:

    rule:
        name:
            f"plot_{_figure.replace('-', '_')}"
        input:
            **get_figure_tables(_figure),
        output:
            png=report(
                f"results/plots/{{dataset}}/{_figure}.png",
                caption=f"../report/{_figure}.rst",
                category="Figures",
                subcategory="{dataset}",
                labels={"dataset": "{dataset}", "figure": _figure},
            ),
            svg=f"results/plots/{{dataset}}/{_figure}.svg",
        params:
            figure=_figure,
            settings=get_plot_settings(),
        log:
            f"results/logs/plots/{{dataset}}/{_figure}.log",
        benchmark:
            f"results/benchmarks/plots/{{dataset}}/{_figure}.tsv"
        localrule: True
        threads: 1
        conda:
            "../envs/report.yaml"
        script:
            "../scripts/plot_figure.py"
