# Helpers of the pipeline: config validation, the run grid, paths and per-rule parameters.
# Rules call only the get_* functions below; nothing here runs a job.
import math
import os
import re
import shlex
from pathlib import Path

from snakemake.utils import validate

from slide_bench.methods import METHODS

DATASET_SOURCES = ("registry", "synthetic", "train", "zip")
RUN = "{method}-{device}-t{threads}-s{seed}"
CURVE = f"results/curves/{{dataset}}/{RUN}.csv"
SIDECAR = f"results/curves/{{dataset}}/{RUN}.json"
# The engine writes its curve and checkpoint here, outside the declared outputs: Snakemake
# deletes the outputs of a killed job, and a rerun must find the checkpoint to resume from.
WORK_CURVE = f"results/checkpoints/{{dataset}}/{RUN}/curve.csv"
PREPARED = "data/prepared/{dataset}"
# Every figure of a dataset and the aggregated tables it is drawn from (one rule each).
FIGURE_TABLES = {
    "convergence-time": ("curves", "summary", "headline"),
    "convergence-iter": ("curves", "summary"),
    "thread-scaling": ("summary",),
    "time-to-accuracy": ("summary", "levels"),
    "sampling": ("curves",),
}
FIGURES = tuple(FIGURE_TABLES)
TABLES = {
    "curves": "results/curves.csv",
    "summary": "results/summary.csv",
    "headline": "results/headline.csv",
    "levels": "results/time-to-level.csv",
}
SUITE = Path(workflow.basedir)
TRAIN_SCRIPT = str(SUITE / "workflow" / "scripts" / "train.py")
# Every job imports the suite from this checkout (the environments of workflow/envs/ hold its
# dependencies only), whatever copy of it an environment has installed. Jobs inherit this
# process's environment; a cluster job parses this file again on its node.
_pythonpath = [entry for entry in os.getenv("PYTHONPATH", "").split(os.pathsep) if entry]
os.environ.update(
    PYTHONPATH=os.pathsep.join([str(SUITE), *(p for p in _pythonpath if p != str(SUITE))])
)


def check_dataset_sources(datasets):
    """Fail with one clear sentence when a dataset does not name exactly one source."""
    for name, entry in datasets.items():
        given = [key for key in DATASET_SOURCES if key in entry]
        if len(given) != 1:
            raise ValueError(
                f"dataset '{name}' must set exactly one of registry, synthetic, train (+ test) "
                f"or zip; it sets {given or 'none'}"
            )
        if ("train" in entry) != ("test" in entry):
            raise ValueError(f"dataset '{name}' must set both train and test (XC text files)")


def check_target(cfg):
    """The headline names a method of this config, peers of this config, and one of its levels."""
    target = cfg["target"]
    methods = cfg["methods"]
    if target["method"] not in methods:
        raise ValueError(
            f"target.method '{target['method']}' is not a method of this config "
            f"(methods: {', '.join(methods)})"
        )
    unknown = [m for m in target["peers"] or [] if m not in methods]
    if unknown:
        raise ValueError(
            f"target.peers names '{unknown[0]}', which is not a method of this config "
            f"(methods: {', '.join(methods)})"
        )
    if target["headline"] not in target["levels"]:
        raise ValueError(
            f"target.headline {target['headline']} is not one of target.levels {target['levels']}"
        )


def add_crossover_datasets(cfg):
    """Add the datasets of a crossover sweep (the `crossover` section, defaults filled) to
    `datasets`; fail when the config has no dataset at all."""
    if "crossover" in cfg:
        from slide_bench.data.xc_shapes import sweep_datasets

        cfg["datasets"] = {**cfg["datasets"], **sweep_datasets(cfg["crossover"])}
    if not cfg["datasets"]:
        raise ValueError("the config names no dataset: give `datasets` or a `crossover` sweep")


def check_engines(methods):
    """Every method's engine is a method of the registry (slide_bench.methods)."""
    for name, spec in methods.items():
        if spec["engine"] not in METHODS:
            raise ValueError(
                f"methods.{name}.engine: '{spec['engine']}' is not one of {list(METHODS)} "
                "(the method registry, slide_bench/methods.py)"
            )


def check_optimizer(optimizer):
    """A per-engine `optimizer.eps` names engines of the registry only."""
    eps = optimizer.get("eps")
    for engine in eps if isinstance(eps, dict) else ():
        if engine not in METHODS:
            raise ValueError(
                f"optimizer.eps.{engine}: '{engine}' is not one of {list(METHODS)} "
                "(the method registry, slide_bench/methods.py)"
            )


check_dataset_sources(config.get("datasets", {}))
validate(config, schema="../schemas/config.schema.yaml")
add_crossover_datasets(config)
validate(config, schema="../schemas/config.schema.yaml")  # the sweep's datasets, defaults filled
check_engines(config["methods"])
check_optimizer(config["optimizer"])
check_target(config)


def get_run_grid():
    """Every grid point as a dict (dataset, method, device, threads, seed), in a stable order."""
    grid = config["grid"]
    runs = []
    for dataset in config["datasets"]:
        for method, spec in config["methods"].items():
            for device in grid["devices"]:
                if device not in spec["devices"]:
                    continue
                threads = spec["threads"]
                if threads is None:
                    gpu_threads = grid["gpu_threads"]
                    use_gpu_threads = device == "gpu" and gpu_threads is not None
                    threads = gpu_threads if use_gpu_threads else grid["threads"]
                for n_threads in threads:
                    for seed in grid["seeds"]:
                        runs.append(
                            dict(dataset=dataset, method=method, device=device,
                                 threads=n_threads, seed=seed)
                        )
    if not runs:
        raise ValueError("the run grid is empty: no method runs on any of grid.devices")
    return runs


RUNS = get_run_grid()


wildcard_constraints:
    dataset="|".join(map(re.escape, config["datasets"])),
    method="|".join(map(re.escape, config["methods"])),
    device="cpu|gpu",
    threads=r"\d+",
    seed=r"\d+",


def get_runs(dataset=None):
    """Grid points, optionally of one dataset."""
    return [run for run in RUNS if dataset is None or run["dataset"] == dataset]


def get_curves(wildcards=None):
    """Curve CSVs of every grid point."""
    return [CURVE.format(**run) for run in get_runs()]


def get_sidecars(wildcards=None):
    """Sidecar JSONs of every grid point."""
    return [SIDECAR.format(**run) for run in get_runs()]


def get_benchmarks(wildcards=None):
    """Benchmark records (peak memory, CPU time) of every training job."""
    return [f"results/benchmarks/curves/{run['dataset']}/{RUN.format(**run)}.tsv" for run in get_runs()]


def get_dataset_stats(wildcards=None):
    """Statistics JSON of every prepared dataset."""
    return [f"{PREPARED.format(dataset=name)}/stats.json" for name in config["datasets"]]


def get_final_outputs():
    """What `snakemake` builds by default: summary, every figure (PNG and SVG), environment."""
    figures = [
        f"results/plots/{dataset}/{figure}.{ext}"
        for dataset in config["datasets"]
        for figure in FIGURES
        for ext in ("png", "svg")
    ]
    crossover = (
        ["results/crossover.csv", "results/plots/crossover.png", "results/plots/crossover.svg"]
        if "crossover" in config else []
    )
    return [
        "results/summary.csv", "results/headline.csv", "results/environment.json", *figures,
        *crossover,
    ]


def get_crossover_datasets(wildcards=None):
    """Datasets of the crossover figure: every dataset of the config, in config order (the
    same order as get_dataset_stats)."""
    return list(config["datasets"])


def get_crossover_budgets(wildcards=None):
    """Training seconds of every run, per dataset (None without a time budget)."""
    return {name: get_budget(name)["time_budget"] for name in config["datasets"]}


def get_prepare_inputs(wildcards):
    """Local files a dataset is made from (none for synthetic data and downloads)."""
    entry = config["datasets"][wildcards.dataset]
    if "train" in entry:
        return {"train": entry["train"], "test": entry["test"]}
    if "zip" in entry:
        return {"archive": entry["zip"]}
    if entry.get("archive"):
        return {"archive": entry["archive"]}
    return {}


def get_dataset_spec(wildcards):
    """The config entry of a dataset, as the prepare script reads it."""
    return config["datasets"][wildcards.dataset]


def get_train_threads(wildcards):
    """A training job holds exactly the cores it trains with."""
    return int(wildcards.threads)


def get_budget(dataset):
    """The training budget of a dataset's runs: `budget`, with the dataset's own `budget` keys
    (a crossover sweep's per-point time budget) on top."""
    return {**config["budget"], **config["datasets"][dataset].get("budget", {})}


def get_train_runtime(wildcards, attempt):
    """Wall-time request of a training job in minutes (the `runtime` resource a cluster executor
    submits, e.g. SLURM's --time): twice the run's time budget (it counts optimiser steps only;
    start-up, evaluation and checkpoints come on top) plus 30 minutes, 24 hours without a time
    budget; doubled on each retry. A run killed at its wall time resumes from its checkpoint on
    the retry, so the budget is not lost, only the time since the last checkpoint."""
    budget = get_budget(wildcards.dataset)["time_budget"]
    minutes = 24 * 60 if budget is None else 30 + math.ceil(2 * budget / 60)
    return minutes * 2 ** (attempt - 1)


def get_train_command(wildcards):
    """The engine or baseline command line of one grid point (without --out)."""
    spec = config["methods"][wildcards.method]
    budget = get_budget(wildcards.dataset)
    prepared = PREPARED.format(dataset=wildcards.dataset)
    engine = METHODS[spec["engine"]]
    argv = list(engine.command)
    if engine.takes_device:
        argv += ["--device", wildcards.device]
    argv += [
        "--train", f"{prepared}/train.npz",
        "--test", f"{prepared}/test.npz",
        "--threads", wildcards.threads,
        "--seed", wildcards.seed,
        "--epochs", str(budget["epochs"]),
        "--dataset-name", wildcards.dataset,
    ]
    eval_every = spec["eval_every"] or budget["eval_every"]
    argv += ["--eval-every", str(eval_every)] if eval_every else ["--set", "run.eval_every=null"]
    if budget["time_budget"] is not None:
        argv += ["--time-budget", str(budget["time_budget"])]
    if spec["config"]:
        argv += ["--config", spec["config"]]
    settings = {
        "run.batch_size": budget["batch_size"],
        "run.eval_points": budget["eval_points"],
        **engine.settings,  # what makes the engine this registry method (none for the plain ones)
        **get_optimizer_settings(spec["engine"]),
        **spec["set"],  # a method's own `set` overrides the shared optimiser
    }
    if budget["eval_every_s"] is not None:
        settings["run.eval_every_s"] = budget["eval_every_s"]
    for key, value in settings.items():
        argv += ["--set", f"{key}={yaml_scalar(value)}"]
    return shlex.join(argv)


def get_optimizer_settings(engine):
    """Engine settings of the optimiser shared by every method of the grid, `optimizer.adam`
    (and `optimizer.lr`, `optimizer.eps` when set) for a method of registry `engine`; `eps`
    may name a value per engine (engines it leaves out keep their own); a method's `set` may
    override them."""
    shared = config["optimizer"]
    settings = {"adam": shared["adam"]}
    eps = shared["eps"].get(engine) if isinstance(shared["eps"], dict) else shared["eps"]
    for key, value in (("lr", shared["lr"]), ("eps", eps)):
        if value is not None:
            settings[key] = value
    return settings


def yaml_scalar(value):
    """A config value as the engine's `--set key=value` parses it (YAML scalars)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def get_method_config_files(wildcards):
    """The method's --config file, if any, so editing it reruns the method."""
    path = config["methods"][wildcards.method]["config"]
    return [path] if path else []


def get_figure_tables(figure):
    """The aggregated tables one figure is drawn from, by name (the plot rule's input)."""
    return {table: TABLES[table] for table in FIGURE_TABLES[figure]}


def get_plot_settings(wildcards=None):
    """What the summary, headline and figures need besides the data: the method order and the
    `target` section (headline method, peers, levels, headline level)."""
    return {"methods": list(config["methods"]), "target": dict(config["target"])}
