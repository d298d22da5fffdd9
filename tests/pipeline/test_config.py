"""The Snakemake pipeline without running it: lint, dry runs of the shipped configs, bad configs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = ["config/config.yaml", "config/paper-delicious.yaml", "config/paper-amazon.yaml",
           "config/amazon670k-like.yaml", "config/ci/config.yaml", "config/crossover.yaml",
           "config/crossover-cluster.yaml", "config/ci/crossover.yaml",
           "config/amazon670k-like-start.yaml", "config/amazon670k-like-start-independent.yaml"]
FIGURES = ("convergence-time", "convergence-iter", "thread-scaling", "time-to-accuracy", "sampling")
# a dry run checks that the CI config's Bibtex zip exists
DRY_RUN_CONFIGS = [pytest.param(c, marks=pytest.mark.bibtex) if c == "config/ci/config.yaml"
                   else c for c in CONFIGS]


def snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run snakemake on the repository's Snakefile; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.mark.slow
def test_lint_is_clean():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("configfile", DRY_RUN_CONFIGS)
def test_dry_run_plans_one_training_job_per_grid_point(configfile):
    # --forceall: plan every job even when an earlier run in this checkout left results
    proc = snakemake("-n", "--forceall", "--configfile", configfile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load((REPO / configfile).read_text())
    grid = config["grid"]
    expected = {"cpu": 0, "gpu": 0}
    for spec in config["methods"].values():
        for device in grid["devices"]:
            if device not in spec.get("devices", ["cpu", "gpu"]):
                continue
            threads = spec.get("threads") or (
                grid["gpu_threads"] if device == "gpu" and grid.get("gpu_threads")
                else grid["threads"])
            expected[device] += len(threads) * len(grid["seeds"]) * n_datasets(config)
    counts = job_counts(proc.stdout)
    assert counts.get("train_cpu", 0) == expected["cpu"]
    assert counts.get("train_gpu", 0) == expected["gpu"]
    assert counts["prepare_dataset"] == n_datasets(config)
    for figure in FIGURES:  # one rule per figure, one job per dataset
        assert counts[f"plot_{figure.replace('-', '_')}"] == n_datasets(config)
    assert counts["aggregate"] == 1
    assert counts.get("crossover", 0) == int("crossover" in config)


def n_datasets(config: dict) -> int:
    """Datasets of a config: its own plus one per label count of a crossover sweep."""
    return len(config.get("datasets", {})) + len(config.get("crossover", {}).get("labels", []))


@pytest.mark.slow
def test_crossover_sweep_plans_one_dataset_per_label_count_with_its_own_budget():
    proc = snakemake("-n", "-p", "--forceall", "--configfile", "config/crossover.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load((REPO / "config/crossover.yaml").read_text())
    sweep = config["crossover"]
    for n_labels, budget in zip(sweep["labels"], sweep["time_budget"], strict=True):
        lines = [ln for ln in proc.stdout.splitlines()
                 if f"--dataset-name crossover-{n_labels} " in ln]
        assert len(lines) == len(config["methods"]) * len(config["grid"]["seeds"])
        for line in lines:  # every method of a label count gets the same training seconds
            assert f"--time-budget {float(budget)} " in line
            every = float(budget) / sweep["evaluations"]
            assert f"run.eval_every_s={every}" in line
    assert "results/crossover.csv" in proc.stdout
    assert "results/plots/crossover.png" in proc.stdout


@pytest.mark.slow
def test_dry_run_commands_carry_the_grid_point_and_the_method_settings():
    proc = snakemake("-n", "-p", "--forceall", "--configfile", "config/config.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines()
                if "slide-uniform-cpu-t2-s1/curve.csv" in ln and "python -m slide_engine" in ln)
    for flag in ("--threads 2", "--seed 1", "--dataset-name synthetic",
                 "--set output.hash.policy=random", "--set run.batch_size=128",
                 "--set adam=lazy", "--set lr=0.005", "--time-budget 20",
                 "--set run.eval_every=null", "--set run.eval_every_s=1.0"):
        assert flag in line
    # the engine writes outside the declared outputs (checkpoints survive a killed job)
    assert "--out results/checkpoints/synthetic/slide-uniform-cpu-t2-s1/curve.csv" in line


@pytest.mark.slow
def test_the_optimizer_rule_reaches_every_method_unless_it_overrides_it(tmp_path):
    def dense_for_one(config):
        config["optimizer"] = {"adam": "dense", "lr": 0.02, "eps": 1.28e-6}
        config["methods"]["tf-full"]["set"] = {"adam": "lazy"}

    configfile = write_config(tmp_path, dense_for_one)
    proc = snakemake("-n", "-p", "--forceall", "--configfile", str(configfile))
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [ln for ln in proc.stdout.splitlines() if " train --" in ln]
    assert commands
    own_eps = method_eps(configfile)
    assert own_eps  # a method with its own eps (slide-lu-collapsed) is among them
    for line in commands:
        # the method's own setting comes last, so it wins over the shared rule
        want = "--set adam=lazy" if "--model full" in line else "--set adam=dense"
        assert line.split("--set adam=")[-1].split()[0] == want.split("=")[-1], line
        assert "--set lr=0.02" in line
        assert last_eps(line) == own_eps.get(method_of(line), 1.28e-6), line


@pytest.mark.slow
def test_a_per_engine_eps_reaches_only_the_engines_it_names(tmp_path):
    def eps_for_tf(config):
        config["optimizer"] = {"adam": "lazy", "eps": {"tf-full": 1.28e-6, "tf-sampled": 2e-6}}

    configfile = write_config(tmp_path, eps_for_tf)
    proc = snakemake("-n", "-p", "--forceall", "--configfile", str(configfile))
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [ln for ln in proc.stdout.splitlines() if " train --" in ln]
    assert any("python -m slide_engine" in ln for ln in commands)
    own_eps = method_eps(configfile)
    for line in commands:
        if method_of(line) in own_eps:  # a method's own eps wins over the per-engine rule
            assert line.count("--set eps=") == 1, line
            assert last_eps(line) == own_eps[method_of(line)]
        elif "python -m slide_engine" in line:
            assert "--set eps=" not in line, line  # the engine keeps its own 1e-8
        elif "--model full" in line:
            assert "--set eps=1.28e-06" in line, line
        else:
            assert "--set eps=2e-06" in line, line

    def eps_for_unknown(config):
        config["optimizer"] = {"adam": "lazy", "eps": {"tf-sampeld": 1e-6}}

    proc = snakemake("-n", "--configfile", str(write_config(tmp_path, eps_for_unknown)))
    assert proc.returncode != 0
    assert "optimizer.eps.tf-sampeld" in proc.stdout + proc.stderr


@pytest.mark.parametrize("configfile", CONFIGS)
def test_shipped_configs_validate_against_the_schema(configfile):
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / configfile).read_text())
    jsonschema.validate(config, schema)  # raises ValidationError naming the bad key


@pytest.mark.slow
def test_amazon670k_like_run_plans_its_subset_eval_cadence_and_ratio_baselines():
    proc = snakemake("-n", "-p", "--forceall", "--configfile", "config/amazon670k-like.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load((REPO / "config/amazon670k-like.yaml").read_text())
    synthetic = config["datasets"]["amazon670k-like"]["synthetic"]
    assert synthetic["preset"] == "amazon670k-like"
    assert set(synthetic["params"]) == {"n_train", "n_test"}  # D and L of the preset are kept
    commands = [ln for ln in proc.stdout.splitlines() if "train --train" in ln or
                "baselines train" in ln]
    assert len(commands) == len(config["methods"]) * len(config["grid"]["seeds"])
    for method, spec in config["methods"].items():
        line = next(ln for ln in commands if f"/{method}-cpu-t2-s0/curve.csv" in ln)
        assert spec.get("eval_every") is None and config["budget"]["eval_every"] is None
        assert "--set run.eval_every=null" in line and "--set run.eval_every_s=20" in line
        assert f"--time-budget {config['budget']['time_budget']}" in line
        assert "--set adam=lazy" in line  # one optimiser for every method


@pytest.mark.slow
def test_a_method_eval_every_overrides_the_budget_and_peers_name_methods(tmp_path):
    def per_method(config):
        config["methods"]["tf-full"]["eval_every"] = 3

    proc = snakemake("-n", "-p", "--forceall", "--configfile",
                     str(write_config(tmp_path, per_method)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    full = [ln for ln in proc.stdout.splitlines() if "--model full" in ln]
    slide = [ln for ln in proc.stdout.splitlines() if "python -m slide_engine train" in ln]
    assert full and all("--eval-every 3 " in ln for ln in full)
    assert slide and all("--eval-every 10 " in ln for ln in slide)

    def unknown(config):
        config["target"]["peers"] = ["tf-sampled-5pct"]

    proc = snakemake("-n", "--configfile", str(write_config(tmp_path, unknown)))
    assert proc.returncode != 0
    assert "target.peers names 'tf-sampled-5pct', which is not a method" in (
        proc.stdout + proc.stderr)


def method_eps(path: Path) -> dict[str, float]:
    """The methods of a config that set their own Adam eps, and the value."""
    methods = yaml.safe_load(path.read_text())["methods"]
    return {name: float(spec["set"]["eps"]) for name, spec in methods.items()
            if "eps" in (spec.get("set") or {})}


def method_of(command: str) -> str:
    """The method of a dry-run train command, from its curve path."""
    return re.search(r"--curve results/curves/[^/]+/(.+?)-(?:cpu|gpu)-t\d+-s\d+\.csv",
                     command).group(1)


def last_eps(command: str) -> float:
    """The Adam eps a train command runs with (the last `--set eps=`, which wins)."""
    return float(command.split("--set eps=")[-1].split()[0])


def write_config(tmp_path: Path, change) -> Path:
    config = yaml.safe_load((REPO / "config/ci/config.yaml").read_text())
    change(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["methods"]["slide"].update(engine="slid"),
         r"methods.slide.engine: 'slid' is not one of \['slide', 'slide-dwta', .*'tf-full', "
         r"'tf-sampled'\] \(the method registry"),
        (lambda c: c["datasets"].update(bad={"registry": "Amazon-1M"}),
         r"'Amazon-1M' is not one of"),
        (lambda c: c["grid"].update(threads=[0]), r"0 is less than the minimum of 1"),
        (lambda c: c["budget"].update(epochs="two"), r"'two' is not of type 'integer'"),
        (lambda c: c["methods"]["slide"].update(typo=1),
         r"Additional properties are not allowed \('typo' was unexpected\)"),
        (lambda c: c["datasets"].update(both={"zip": "a.zip", "registry": "Bibtex"}),
         r"dataset 'both' must set exactly one of registry, synthetic, train"),
        (lambda c: c["datasets"].update(half={"train": "a.txt"}),
         r"dataset 'half' must set both train and test"),
        (lambda c: c["target"].update(method="slid"),
         r"target.method 'slid' is not a method of this config"),
        (lambda c: c["target"].update(headline=0.8),
         r"target.headline 0.8 is not one of target.levels"),
        (lambda c: c.update(optimizer={"adam": "sparse"}), r"'sparse' is not one of"),
    ],
)
@pytest.mark.slow
def test_invalid_configs_fail_with_a_clear_message(tmp_path, change, message):
    proc = snakemake("-n", "--configfile", str(write_config(tmp_path, change)))
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr), (proc.stdout + proc.stderr)[-3000:]


@pytest.mark.slow
def test_schema_fills_defaults_of_omitted_sections(tmp_path):
    def minimal(config):
        for key in ("grid", "budget", "target", "optimizer"):
            config.pop(key)

    configfile = write_config(tmp_path, minimal)
    proc = snakemake("-n", "-p", "--forceall", "--configfile", str(configfile))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # defaults: cpu, 1 thread, seed 0, 60 training seconds (1000 epochs at most), eval every 50
    # iterations, batch 128, lazy Adam
    counts = job_counts(proc.stdout)
    assert counts["train_cpu"] == 5 * 3
    assert "--threads 1 --seed 0 --epochs 1000 --dataset-name" in proc.stdout
    assert "--eval-every 50" in proc.stdout and "--set adam=lazy" in proc.stdout
    assert "--time-budget 60 " in proc.stdout
    assert "--set run.batch_size=128" in proc.stdout
    own_eps = method_eps(configfile)
    for line in (ln for ln in proc.stdout.splitlines() if " train --" in ln):
        # each engine's own eps unless the config or the method names one
        assert ("--set eps=" in line) == (method_of(line) in own_eps), line
