"""A preempted training job resumes from its checkpoint on the local SLURM cluster.

`scontrol requeue` ends a running job and queues it again, which is what SLURM does to a job
that a higher-priority one preempts (PreemptMode=REQUEUE). profiles/slurm submits with
--requeue, Snakemake keeps waiting, and the restarted job must continue its curve from the
checkpoint under results/checkpoints/ (oracle: the partial curve before the requeue, SLURM's
accounting of the job's two runs, the engine's sidecar).

Run alone (root; about 2 minutes on 2 cores):
    python -m pytest -q tests/pipeline/test_slurm_requeue.py
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
from _pipeline import REPO, absolute_config, snakemake_argv

pytestmark = pytest.mark.slow

PROFILE = REPO / "profiles" / "slurm"


def squeue_state(jobid: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", jobid, "-o", "%T"], capture_output=True,
                         text=True, timeout=60)
    return out.stdout.strip()


def test_a_requeued_training_job_resumes_from_its_checkpoint(slurm_cluster, tmp_path, capsys):
    """The job is requeued after its first checkpoint. SLURM sends SIGTERM to the job's task
    (Snakemake, which then waits for the training command), SIGKILL KillWait seconds later
    (5 on the local cluster); the run has 12 training seconds, so it is still training then."""

    def one_run(config):
        config["datasets"] = {"tiny": config["datasets"]["tiny"]}
        config["methods"] = {"slide": config["methods"]["slide"]}
        config["methods"]["slide"].setdefault("set", {})["run.checkpoint_every_s"] = 0.5
        config["grid"].update(threads=[1], seeds=[0])
        config["budget"].update(epochs=1000, time_budget=12, eval_every=50)

    configfile = absolute_config(tmp_path, one_run)
    curve = tmp_path / "results" / "curves" / "tiny" / "slide-cpu-t1-s0.csv"
    work = tmp_path / "results" / "checkpoints" / "tiny" / "slide-cpu-t1-s0"
    log = tmp_path / "snakemake.log"
    argv = snakemake_argv(tmp_path, configfile, "--workflow-profile", str(PROFILE),
                          "--slurm-init-seconds-before-status-checks", "5",
                          str(curve.relative_to(tmp_path)))
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    jobid = None
    try:
        deadline = time.monotonic() + 600
        while not list(work.glob("*.ckpt*")):
            assert proc.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
            time.sleep(0.2)
        jobid = re.search(r"submitted with SLURM jobid (\d+) \(log: \S+/rule_train_cpu/",
                          log.read_text()).group(1)
        partial = pd.read_csv(work / "curve.csv")
        subprocess.run(["scontrol", "requeue", jobid], check=True, timeout=60)
        # a requeued job waits a while before it may start again; let it start now
        while squeue_state(jobid) not in ("PENDING", ""):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        subprocess.run(["scontrol", "update", f"JobId={jobid}", "StartTime=now"], check=True,
                       timeout=60)
        assert proc.wait(timeout=600) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            if jobid is not None:
                subprocess.run(["scancel", jobid], capture_output=True, timeout=60)
    states = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-j", jobid, "-o", "State"],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    assert states.split() == ["REQUEUED", "COMPLETED"], states
    sidecar = json.loads(curve.with_suffix(".json").read_text())
    assert sidecar["resumed"] is True and sidecar["status"] in ("done", "timeout"), sidecar
    final = pd.read_csv(curve)
    subset = final[final["eval_set"] == "subset"]
    # one curve from iteration 0: the rows before the requeue kept, none repeated, the clock
    # carried on from the checkpoint
    assert subset["iteration"].iloc[0] == 0 and (np.diff(subset["iteration"]) > 0).all()
    assert (np.diff(subset["train_seconds"]) >= 0).all()
    assert subset["iteration"].iloc[-1] > partial["iteration"].max()
    assert final["eval_set"].iloc[-1] == "full"
    with capsys.disabled():
        print(f"\nSLURM job {jobid} requeued after iteration {partial['iteration'].max()}, "
              f"resumed from its checkpoint, finished at iteration {subset['iteration'].iloc[-1]}")
