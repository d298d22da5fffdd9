"""The CI experiment on a real single-node SLURM cluster, through profiles/slurm.

`workflow/cluster/slurm-local.sh start` brings up munged, MariaDB, slurmdbd, slurmctld and slurmd
on this host (installing Debian's packages if needed); then
`snakemake --workflow-profile profiles/slurm --configfile <the CI config>` runs the whole
pipeline with the SLURM executor plugin. The oracles: SLURM's own accounting (`sacct`: every
training job, its --cpus-per-task, start and end), the plugin's submission log, and the local run
of the same config (`ci_local_run`, shared with tests/pipeline/test_e2e.py) for the outputs'
schema and rows. The cluster (the session fixture `slurm_cluster`) is stopped at the end of the
session unless it was already running before.

Run alone (root; about 8 minutes on 2 cores, the local run it compares with included; more on a
    busy machine):
    python -m pytest -q tests/pipeline/test_slurm.py
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _pipeline import REPO, absolute_config, snakemake_argv

pytestmark = pytest.mark.slow

PROFILE = REPO / "profiles" / "slurm"
GRID_KEYS = ("dataset", "method", "device", "threads", "seed")
FIGURE_RULES = ("plot_convergence_time", "plot_convergence_iter", "plot_thread_scaling",
                "plot_time_to_accuracy", "plot_sampling")
SACCT_FIELDS = ("JobIDRaw", "Comment", "ReqCPUS", "Partition", "Account", "Timelimit", "Start",
                "End", "State")


def sacct_jobs(run_id: str, since: str) -> pd.DataFrame:
    """Every SLURM job of one Snakemake run (the plugin names each job after the run id)."""
    out = subprocess.run(
        ["sacct", "-X", "--parsable2", "--noheader", "--name", run_id, "--starttime", since,
         "--format", ",".join(SACCT_FIELDS)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line]
    jobs = pd.DataFrame(rows, columns=list(SACCT_FIELDS))
    jobs["ReqCPUS"] = jobs["ReqCPUS"].astype(int)
    for column in ("Start", "End"):
        jobs[column] = pd.to_datetime(jobs[column])
    return jobs


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """The CI config through profiles/slurm; returns (workdir, log text, sacct jobs)."""
    work = tmp_path_factory.mktemp("slurm-run")
    configfile = absolute_config(work)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
    log = work / "snakemake.log"
    argv = snakemake_argv(
        work, configfile, "--workflow-profile", str(PROFILE),
        # the plugin's first status check after 5 s instead of 40 (a test, not a busy cluster)
        "--slurm-init-seconds-before-status-checks", "5",
        "--verbose",  # the plugin then logs every sbatch call
    )
    with log.open("w") as out:
        proc = subprocess.run(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=1500)
    text = log.read_text()
    assert proc.returncode == 0, text[-6000:]
    run_id = re.search(r"SLURM run ID: (\S+)", text)
    assert run_id, "the plugin logged no SLURM run ID"
    jobs = sacct_jobs(run_id.group(1), since)
    return work, text, jobs


@pytest.fixture(scope="module")
def local_run(ci_local_run):
    work, _ = ci_local_run
    return work


def grid_points(results: Path) -> list[dict]:
    """The runs of a finished pipeline: one summary row each."""
    summary = pd.read_csv(results / "summary.csv")
    return summary[list(GRID_KEYS)].to_dict("records")


def timelimit_minutes(value: str) -> int:
    """sacct's Timelimit ([days-]hours:minutes:seconds) in minutes."""
    days, _, clock = value.rpartition("-")
    hours, minutes, _ = map(int, clock.split(":"))
    return (int(days or 0) * 24 + hours) * 60 + minutes


def train_comment(run: dict) -> str:
    """The job comment the plugin gives a training job: rule and wildcard values."""
    values = "_".join(str(run[key]) for key in GRID_KEYS)
    return f"rule_train_{run['device']}_wildcards_{values}"


def submitted(text: str) -> dict[str, tuple[str, int]]:
    """From the plugin's log: SLURM job id -> (rule/wildcards folder of its SLURM log,
    --cpus-per-task) of every sbatch call. Submissions run in a thread pool, so calls and job
    ids are matched through the log folder, which is one per job."""
    calls = re.findall(r"sbatch call: sbatch .*?--output (\S+)/%j\.log .*?--cpus-per-task=(\d+)",
                       text)
    cpus = {Path(folder).parts[-2:]: int(n) for folder, n in calls}
    ids = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)/\d+\.log\)", text)
    assert len(calls) == len(ids) == len(cpus), "one sbatch call per job, each with its job id"
    return {jobid: ("/".join(Path(folder).parts[-2:]), cpus[Path(folder).parts[-2:]])
            for jobid, folder in ids}


def test_every_training_job_ran_as_a_slurm_job_with_its_threads(slurm_run, local_run, capsys):
    work, text, jobs = slurm_run
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    account = profile["default-resources"]["slurm_account"]
    partition = profile["default-resources"]["slurm_partition"]
    runs = grid_points(local_run / "results")
    # the wall time asked for: 30 minutes plus twice the config's time budget (first attempt)
    budget = yaml.safe_load((work / "config.yaml").read_text())["budget"]["time_budget"]
    minutes = 24 * 60 if budget is None else 30 + math.ceil(2 * budget / 60)
    from_log = submitted(text)
    train = jobs[jobs["Comment"].str.startswith("rule_train_")]
    assert len(train) == len(runs), (len(train), len(runs))
    lines = []
    for run in runs:
        job = train[train["Comment"] == train_comment(run)]
        assert len(job) == 1, (run, job)
        job = job.iloc[0]
        assert job["State"] == "COMPLETED", job.to_dict()
        assert job["ReqCPUS"] == run["threads"], job.to_dict()  # --ntasks=1 x --cpus-per-task
        assert (job["Account"], job["Partition"]) == (account, partition)
        assert timelimit_minutes(job["Timelimit"]) == minutes, job.to_dict()
        # the plugin submitted this very job id with --cpus-per-task = the run's threads
        folder = f"rule_train_{run['device']}/" + train_comment(run).split("_wildcards_")[1]
        assert from_log[job["JobIDRaw"]] == (folder, run["threads"])
        name = "{dataset}/{method}-{device}-t{threads}-s{seed}".format(**run)
        lines.append(f"  SLURM job {job['JobIDRaw']:>5}  --cpus-per-task={job['ReqCPUS']}  "
                     f"{job['Start']:%H:%M:%S}-{job['End']:%H:%M:%S}  {name}")
    # the job ids in the CI log (printed past pytest's capture)
    with capsys.disabled():
        print(f"\nSLURM training jobs of the CI experiment ({len(lines)}):", *lines, sep="\n")
    (work / "slurm-training-jobs.txt").write_text("\n".join(lines) + "\n")


def test_timed_jobs_never_shared_the_node(slurm_run):
    _, _, jobs = slurm_run
    assert (jobs["State"] == "COMPLETED").all(), jobs[["Comment", "State"]]
    train = jobs[jobs["Comment"].str.startswith("rule_train_")]
    assert len(train) > 1
    for _, timed in train.iterrows():
        others = jobs[jobs["JobIDRaw"] != timed["JobIDRaw"]]
        overlap = others[(others["Start"] < timed["End"]) & (others["End"] > timed["Start"])]
        assert overlap.empty, (timed.to_dict(), overlap[["Comment", "Start", "End"]])


def local_rules() -> set[str]:
    """The rules kept on the submitting host: the Snakefile's `localrules:` and the figure rules
    (`localrule: True` in workflow/rules/plots.smk, one rule per figure)."""
    block = re.search(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", (REPO / "Snakefile").read_text(), re.M)
    assert block, "the Snakefile declares no localrules"
    assert "localrule: True" in (REPO / "workflow" / "rules" / "plots.smk").read_text()
    return set(re.findall(r"\w+", block.group(1))) | set(FIGURE_RULES)


def test_cheap_rules_ran_locally_and_the_rest_on_the_cluster(slurm_run, local_run):
    _, text, jobs = slurm_run
    on_slurm = set(jobs["Comment"].str.extract(r"^rule_(\w+?)(?:_wildcards_|$)")[0])
    # Snakemake's log labels each job `rule X:` (submitted) or `localrule X:` (run here)
    submitted_rules = set(re.findall(r"^rule (\w+):$", text, re.M))
    here = set(re.findall(r"^localrule (\w+):$", text, re.M))
    assert submitted_rules == on_slurm, (submitted_rules, on_slurm)
    assert {"prepare_dataset", "environment", "train_cpu"} <= on_slurm
    # every rule that ran here is declared local (the target rule `all` always runs here); the
    # CI config runs every local rule but `crossover` (its config has no sweep)
    assert {"aggregate", "headline", *FIGURE_RULES} <= here - {"all"} <= local_rules()
    assert not here & on_slurm, here & on_slurm
    datasets = {run["dataset"] for run in grid_points(local_run / "results")}
    prepare = jobs[jobs["Comment"].str.startswith("rule_prepare_dataset_")]
    assert set(prepare["Comment"]) == {f"rule_prepare_dataset_wildcards_{d}" for d in datasets}


def keys(table: pd.DataFrame) -> list[tuple]:
    """The rows of a results table by its grid-key columns (dataset, method, ...), sorted; a
    table without any of them is compared by its number of rows only."""
    columns = [c for c in GRID_KEYS if c in table.columns]
    if not columns:
        return [()] * len(table)
    return sorted(map(tuple, table[columns].astype(str).to_numpy()))


def test_outputs_match_the_local_run(slurm_run, local_run):
    work, _, _ = slurm_run
    slurm, local = work / "results", local_run / "results"
    # every table of results/ (curves, summary, and any other such as a headline): same columns,
    # same grid rows; the numbers are timings and differ
    tables = sorted(p.name for p in local.glob("*.csv"))
    assert tables and sorted(p.name for p in slurm.glob("*.csv")) == tables
    for name in tables:
        a, b = pd.read_csv(slurm / name), pd.read_csv(local / name)
        assert list(a.columns) == list(b.columns), name
        if name == "curves.csv":  # one row per evaluation: as many per run as the clock allowed
            assert sorted(set(keys(a))) == sorted(set(keys(b)))
        else:
            assert keys(a) == keys(b), name
    summary = pd.read_csv(slurm / "summary.csv")
    assert set(summary["status"]) <= {"done", "timeout"}, summary[["method", "status", "reason"]]
    # one finished curve and sidecar per run, same columns as the local run's
    curves = sorted(p.relative_to(local).as_posix() for p in local.glob("curves/*/*.csv"))
    assert sorted(p.relative_to(slurm).as_posix() for p in slurm.glob("curves/*/*.csv")) == curves
    for name in curves:
        a, b = pd.read_csv(slurm / name), pd.read_csv(local / name)
        assert list(a.columns) == list(b.columns), name
        assert a["eval_set"].iloc[-1] == "full", name
        sidecar = json.loads((slurm / name).with_suffix(".json").read_text())
        assert sidecar["status"] in ("done", "timeout"), (name, sidecar["status"])
    # the same figures, real PNG and SVG files
    def figures(results: Path) -> list[str]:
        return sorted(p.relative_to(results).as_posix()
                      for p in (results / "plots").rglob("*") if p.is_file())

    assert figures(local) and figures(slurm) == figures(local)
    for name in figures(slurm):
        data = (slurm / name).read_bytes()
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        elif name.endswith(".svg"):
            assert data.lstrip()[:5] == b"<?xml", name
    environment = json.loads((slurm / "environment.json").read_text())
    assert environment.keys() == json.loads((local / "environment.json").read_text()).keys()

