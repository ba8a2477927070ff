"""slurm/train.sbatch and slurm/scaling.sh submitted to a real one-node SLURM.

The module's fixture installs SLURM if it can (root + apt-get, via .ci/slurm-setup.sh),
starts slurmctld + slurmd in a scratch directory and stops them afterwards by their PIDs;
where SLURM cannot be installed or started, every test here skips with the reason.
Jobs are waited for by a loop on squeue (sbatch --wait reacts late), and checked through
their output files and run directories (no accounting daemon, so no sacct).
"""

import csv
import json
import os
import re
import shutil
import sys
import tempfile

import pytest
from helpers import REPO, child_env
from slurm_cluster import SlurmCluster

TRAIN_SBATCH = os.path.join(REPO, "slurm", "train.sbatch")
SCALING_SH = os.path.join(REPO, "slurm", "scaling.sh")
TINY_TRAIN = "--hidden 8 --global-batch 32 --steps 4 --log-every 4"
JOB_TIMEOUT = 180  # seconds; the jobs take a few each, but CI machines can be busy


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    # slurmd keeps unix sockets in its spool directory: keep the path well under 108 bytes.
    root, scratch = str(tmp_path_factory.mktemp("slurm")), None
    if len(root) > 60:
        root = scratch = tempfile.mkdtemp(prefix="hpctrain-slurm-")
    cluster = SlurmCluster(root)
    reason = cluster.start()
    try:
        if reason:
            pytest.skip(f"no SLURM cluster here: {reason}")
        yield cluster
    finally:
        cluster.stop()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from hpctrain.data.synth import make_synthetic

    path = tmp_path_factory.mktemp("slurm-data") / "tiny"
    make_synthetic(path, samples=128, features=6, classes=2, shards=2, seed=3)
    return path


def job_env(**extra):
    """What a user's shell has at sbatch time: hpctrain's Python and its bin/ on PATH."""
    return child_env(HPCTRAIN_PYTHON=sys.executable, **extra)


def wait_ok(cluster, job_ids):
    try:
        cluster.wait(job_ids, timeout=JOB_TIMEOUT)
    except TimeoutError as err:
        pytest.fail(f"{err}\n{cluster.run(['squeue'], check=False).stdout}")


@pytest.mark.parametrize("launcher", ["srun", "mpiexec"])
def test_train_sbatch_runs_two_ranks(slurm, tiny_data, tmp_path, launcher):
    run = tmp_path / "run"
    env = job_env(HPCTRAIN_DATA=tiny_data, HPCTRAIN_RUN=run, HPCTRAIN_ARGS=TINY_TRAIN,
                  HPCTRAIN_LAUNCHER=launcher)
    job = slurm.sbatch(["--ntasks", "2", "--output", tmp_path / "job-%j.out", TRAIN_SBATCH],
                       env=env, cwd=tmp_path)
    wait_ok(slurm, [job])

    output = (tmp_path / f"job-{job}.out").read_text()
    assert f"hpctrain job {job}: exit 0" in output, output
    assert f"2 ranks on {slurm.host}" in output
    assert re.search(rf"launcher (\S*/)?{launcher},", output)  # mpiexec: the one found
    summary = json.loads((run / "summary.json").read_text())
    # ranks == 2 also proves srun started ONE 2-rank MPI job, not two 1-rank programs.
    assert summary["ranks"] == 2 and summary["global_batch"] == 32 and summary["steps"] == 4
    assert summary["hosts"] == [slurm.host]
    assert (run / "config.json").exists() and (run / "metrics.jsonl").exists()


def test_bench_scaling_launches_with_srun(slurm, tiny_data, tmp_path):
    out = tmp_path / "srun-study"
    proc = slurm.run([sys.executable, "-m", "hpctrain", "bench", "scaling", "--mode", "weak",
                      "--ranks", "2", "--data", str(tiny_data), "--hidden", "8",
                      "--batch-size", "16", "--steps", "4", "--repeats", "1",
                      "--launcher", "srun", "--out", str(out)],
                     env=job_env(), check=False, timeout=JOB_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (out / "logs" / "p2-ring-r0.log").read_text()
    assert log.startswith("$ srun --mpi=pmi2 --ntasks 2 ")
    summary = json.loads((out / "runs" / "p2-ring-r0" / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["local_batch"] == 16


def test_scaling_sh_sweep_with_arrays_and_a_report_job(slurm, tmp_path):
    out = tmp_path / "sweep"
    proc = slurm.run(["bash", SCALING_SH, "--mode", "strong", "--tasks", "1,2",
                      "--features", "6", "--hidden", "8", "--classes", "2",
                      "--global-batch", "32", "--steps", "4", "--repeats", "2",
                      "--out", str(out)], env=job_env(), timeout=60)
    job_ids = proc.stdout.strip().splitlines()[-1].removeprefix("jobs:").split()
    assert len(job_ids) == 4, proc.stdout  # data, n1 array, n2 array, report
    wait_ok(slurm, job_ids)

    report_log = out / "logs" / f"report-{job_ids[-1]}.out"
    assert report_log.exists(), sorted(os.listdir(out / "logs"))
    with open(out / "scaling.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["ranks"], r["algorithm"], r["repeats"], r["status"]) for r in rows] == \
        [("1", "ring", "2", "ok"), ("2", "ring", "2", "ok")], report_log.read_text()
    for n in (1, 2):
        for r in (1, 2):
            summary = json.loads((out / "runs" / f"n{n}-ring-r{r}" / "summary.json").read_text())
            assert summary["ranks"] == n and summary["global_batch"] == 32
    # the data job made 4 global batches in as many shards as the largest size
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert manifest["splits"]["train"]["rows"] == 4 * 32
    assert (out / "scaling.md").read_text().startswith("# Strong scaling")


def test_a_failed_run_cancels_the_afterok_report(slurm, tiny_data, tmp_path):
    out = tmp_path / "sweep"
    proc = slurm.run(["bash", SCALING_SH, "--mode", "weak", "--tasks", "1", "--data",
                      str(tiny_data), "--train-args", "--no-such-flag", "--out", str(out)],
                     env=job_env(), timeout=60)
    job_ids = proc.stdout.strip().splitlines()[-1].removeprefix("jobs:").split()
    assert len(job_ids) == 2, proc.stdout  # one run, the report
    # With afterok and --kill-on-invalid-dep the report job leaves the queue instead of
    # pending forever: the wait below would time out otherwise.
    wait_ok(slurm, job_ids)

    (log,) = (out / "logs").glob("n1-ring-*.out")
    assert "exit 2" in log.read_text() and "no-such-flag" in log.read_text()
    assert not (out / "scaling.csv").exists()
    assert not list((out / "logs").glob("report-*.out"))
