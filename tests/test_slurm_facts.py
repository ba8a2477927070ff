"""summary.json's `slurm` facts: read from the job's environment on rank 0, never used for
rank or size. The variables are set for the ranks alone (`mpiexec -n 2 env ...`), so the
launcher itself does not take them for an allocation. (A real sbatch job: tests/test_slurm.py.)
"""

import os
import subprocess
import sys

from helpers import check, child_env, mpiexec, run_cli
from train_util import make_data, summary

JOB = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "w2-strong", "SLURM_JOB_NODELIST": "node[01-04]",
       "SLURM_JOB_NUM_NODES": "4", "SLURM_NTASKS": "64", "SLURM_TASKS_PER_NODE": "16(x4)",
       "SLURM_CPUS_PER_TASK": "2", "SLURM_JOB_PARTITION": "short"}


def test_summary_records_the_slurm_job_and_ranks_come_from_mpi(tmp_path):
    data = make_data(tmp_path / "d", samples=200)
    run = tmp_path / "r"
    cmd = [mpiexec(), "-n", "2", "env", *(f"{k}={v}" for k, v in JOB.items()), sys.executable,
           "-m", "hpctrain", "train", "--data", data, "--out", run, "--hidden", "4",
           "--steps", "3", "--allreduce", "ring", "--threads", "1"]
    check(subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=child_env()))
    facts = summary(run)
    assert facts["slurm"] == {"job_id": 4242, "job_name": "w2-strong", "nodelist": "node[01-04]",
                              "nodes": 4, "tasks": 64, "tasks_per_node": "16(x4)",
                              "cpus_per_task": 2, "partition": "short"}
    assert facts["ranks"] == 2  # MPI's size, not SLURM_NTASKS


def test_outside_slurm_it_is_null(tmp_path):
    data = make_data(tmp_path / "d", samples=100)
    env = {k: v for k, v in child_env().items() if not k.startswith("SLURM_")}
    check(run_cli(["train", "--data", data, "--out", tmp_path / "r", "--steps", "2"], env=env))
    assert summary(tmp_path / "r")["slurm"] is None
    assert "SLURM_JOB_ID" not in env and os.path.exists(tmp_path / "r" / "summary.json")
