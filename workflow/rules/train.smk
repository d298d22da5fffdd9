# Training: one job per grid point. Timed jobs hold the `timed_slot` resource (profiles/default
# allows one at a time) and exactly their thread count, so no two timed runs share the machine
# (on SLURM, profiles/slurm gives each its own node instead). `runtime` (minutes, the cluster's
# wall-time request) follows the config's time budget.
# GPU runs are a separate rule so that profiles can send them to a GPU partition or node pool;
# their environment adds TensorFlow's CUDA libraries (the same `tensorflow` build as CPU runs).
# workflow/scripts/train.py runs the job: it refuses a job given fewer cores than its thread
# count, runs the engine's or baseline's command (in full in the job's shell command) with its
# output in the log, into results/checkpoints/ (not a declared output, so a killed job keeps
# its checkpoint and partial curve and a rerun resumes), then publishes the curve, or records a
# failed run when a baseline exits 3 (no GPU visible).


rule train_cpu:
    input:
        train=f"{PREPARED}/train.npz",
        test=f"{PREPARED}/test.npz",
        method_config=get_method_config_files,
    output:
        curve=CURVE,
        sidecar=SIDECAR,
    params:
        script=TRAIN_SCRIPT,
        command=get_train_command,
        work=WORK_CURVE,
    log:
        f"results/logs/curves/{{dataset}}/{RUN}.log",
    benchmark:
        f"results/benchmarks/curves/{{dataset}}/{RUN}.tsv"
    wildcard_constraints:
        device="cpu",
    threads: get_train_threads
    resources:
        timed_slot=1,
        runtime=get_train_runtime,
    conda:
        "../envs/train.yaml"
    shell:
        "python {params.script} --threads {wildcards.threads} --cores {threads} --log {log} "
        "--work {params.work} --curve {output.curve} --sidecar {output.sidecar} "
        "-- {params.command} --out {params.work}"


use rule train_cpu as train_gpu with:
    wildcard_constraints:
        device="gpu",
    conda:
        "../envs/train-gpu.yaml"
    resources:
        timed_slot=1,
        runtime=get_train_runtime,
        gpu=1,
