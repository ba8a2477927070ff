"""The shell scripts without a cluster: scaling.sh's plan (--dry-run), the scripts' checks.

scaling.sh keeps its own copy of the docs/WORKLOADS.md shapes (a shell script on a login node
should not need Python to plan); these tests hold it to hpctrain.bench.workloads' table, and
every script's thread variables to hpctrain.runtime's list.
"""

import glob
import os
import re
import subprocess
import sys

import pytest
from helpers import REPO, child_env

from hpctrain.bench.scaling_plan import batch_args, dataset_rows
from hpctrain.bench.workloads import WORKLOADS
from hpctrain.data.synth import make_synthetic
from hpctrain.runtime import THREAD_VARS

SCALING_SH = os.path.join(REPO, "slurm", "scaling.sh")
TRAIN_SBATCH = os.path.join(REPO, "slurm", "train.sbatch")


def bash(args, **env):
    return subprocess.run(["bash", *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=child_env(**env))


def dry_run(tmp_path, *args):
    proc = bash([SCALING_SH, "--dry-run", "--out", tmp_path / "sweep", *args])
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("mode", ["strong", "weak"])
def test_plan_matches_the_python_workloads(tmp_path, workload, mode):
    plan = dry_run(tmp_path, "--mode", mode, "--workload", workload, "--tasks", "1,4,16",
                   "--allreduce", "ring,tree")
    work = WORKLOADS[workload]
    synth = re.search(r"data synth .*", plan).group(0)
    assert f"--samples {dataset_rows(mode, work, 16)} " in synth
    assert f"--features {work.features} --classes {work.classes} --shards 16" in synth
    train = re.findall(r"HPCTRAIN_ARGS='([^']*)'", plan)
    assert len(train) == 3 * 2
    for args in train:
        assert f"--hidden {work.hidden_flag} {' '.join(batch_args(mode, work))} " in args
    submitted = re.findall(r"sbatch --parsable (.*)", plan)
    assert len(submitted) == 1 + 6 + 1  # data, one per (size, algorithm), report
    assert not (tmp_path / "sweep").exists()  # a dry run creates nothing


def test_sizes_nodes_arrays_and_dependencies(tmp_path):
    plan = dry_run(tmp_path, "--mode", "weak", "--nodes", "1,2", "--tasks-per-node", "8",
                   "--repeats", "3", "--data", tmp_path, "--sbatch-args", "--partition=cpu")
    jobs = re.findall(r"sbatch --parsable (.*)", plan)
    assert len(jobs) == 3  # no data job with --data; two sizes; the report
    assert "--nodes=1 --ntasks-per-node=8 --ntasks=8 " in jobs[0]
    assert "--nodes=2 --ntasks-per-node=8 --ntasks=16 " in jobs[1]
    for job in jobs[:2]:
        assert "--array=1-3" in job and "--partition=cpu" in job and "--dependency" not in job
        assert job.endswith("slurm/train.sbatch")
    assert ("--dependency=afterok:{hpctrain-weak-n8-ring}:{hpctrain-weak-n16-ring} "
            "--kill-on-invalid-dep=yes") in jobs[2]
    assert re.search(r"bench report \S*/sweep/runs/\* --out \S*/sweep --mode weak", plan)


def test_report_after_any_keeps_the_report_for_failed_runs(tmp_path):
    plan = dry_run(tmp_path, "--mode", "strong", "--tasks", "2", "--data", tmp_path,
                   "--report-after", "any")
    assert "--dependency=afterany:{hpctrain-strong-n2-ring}" in plan
    assert "kill-on-invalid-dep" not in plan


@pytest.mark.parametrize("args, message", [
    (["--mode", "fast"], "--mode must be strong or weak"),
    (["--mode", "weak", "--nodes", "2"], "--nodes needs --tasks-per-node"),
    (["--mode", "weak", "--tasks", "1,0"], "--tasks must be positive counts"),
    (["--mode", "weak", "--workload", "W3"], "--workload must be W1 or W2"),
    (["--mode", "weak", "--bogus", "1"], "unknown option --bogus"),
    (["--mode", "weak", "--steps", "1"], "--steps must be at least 2"),
    (["--mode", "weak", "--data", "/no/such/dataset"], "no such directory"),
])
def test_scaling_sh_usage_errors(tmp_path, args, message):
    proc = bash([SCALING_SH, "--dry-run", "--out", tmp_path / "sweep", *args])
    assert proc.returncode == 2
    assert message in proc.stderr


def test_scaling_sh_refuses_to_mix_with_earlier_runs(tmp_path):
    runs = tmp_path / "sweep" / "runs" / "n1-ring"
    runs.mkdir(parents=True)
    proc = bash([SCALING_SH, "--mode", "weak", "--out", tmp_path / "sweep"])
    assert proc.returncode == 2 and "already holds runs" in proc.stderr


def test_train_sbatch_needs_a_dataset(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCTRAIN_")}
    proc = subprocess.run(["bash", TRAIN_SBATCH], capture_output=True, text=True, timeout=60,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "HPCTRAIN_DATA" in proc.stderr


def test_train_sbatch_declares_its_knobs():
    text = open(TRAIN_SBATCH).read()
    assert "export SRUN_CPUS_PER_TASK=$cpus" in text
    assert 'srun "--mpi=${HPCTRAIN_SRUN_MPI:-pmi2}"' in text
    for directive in ("--nodes", "--ntasks-per-node", "--cpus-per-task", "--time", "--output"):
        assert re.search(rf"^#SBATCH {directive}=", text, re.M), directive


def test_train_sbatch_finds_mpiexec_as_hpctrain_does(tmp_path):
    """Without HPCTRAIN_MPIEXEC and with no mpiexec on PATH, the job still finds the one
    beside HPCTRAIN_PYTHON (hpctrain.launcher's order), and trains with it."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.access(beside, os.X_OK):
        pytest.skip("no mpiexec beside this Python")
    data = tmp_path / "data"
    make_synthetic(data, samples=64, features=6, classes=2, shards=1, seed=0)
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)),
           "HPCTRAIN_PYTHON": sys.executable, "HPCTRAIN_DATA": str(data),
           "HPCTRAIN_RUN": str(tmp_path / "run"), "HPCTRAIN_LAUNCHER": "mpiexec",
           "HPCTRAIN_ARGS": "--hidden 8 --batch-size 16 --steps 3 --log-every 3"}
    proc = subprocess.run(["bash", TRAIN_SBATCH], capture_output=True, text=True, timeout=120,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"launcher {beside}," in proc.stdout
    assert (tmp_path / "run" / "summary.json").exists()


def exported_thread_vars(path) -> set:
    """The *_THREADS variables a shell script exports (continuation lines joined)."""
    text = open(path).read().replace("\\\n", " ")
    exports = re.findall(r"^\s*export (.*)$", text, re.M)
    return {name for line in exports for name in re.findall(r"(\w+_THREADS)=", line)}


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "slurm", "*")) +
                                        glob.glob(os.path.join(REPO, "benchmarks", "*.sh"))),
                         ids=os.path.basename)
def test_scripts_that_set_threads_set_every_thread_variable(path):
    exported = exported_thread_vars(path)
    if exported:
        assert exported == set(THREAD_VARS)
