# Datasets: fetch (registry downloads) or read local files, verify, shuffle, cache as npz.


rule prepare_dataset:
    input:
        unpack(get_prepare_inputs),
    output:
        train=f"{PREPARED}/train.npz",
        test=f"{PREPARED}/test.npz",
        stats=f"{PREPARED}/stats.json",
    params:
        spec=get_dataset_spec,
    log:
        "results/logs/data/{dataset}.log",
    benchmark:
        "results/benchmarks/data/{dataset}.tsv"
    threads: 1
    conda:
        "../envs/slide.yaml"
    script:
        "../scripts/prepare_dataset.py"
