"""`hpctrain bench report` adds sacct's Elapsed, MaxRSS and TotalCPU to SLURM runs.

The test SLURM cluster (tests/slurm_cluster.py) runs without accounting storage, so no real
sacct here can answer with data. What is tested for real: sacct absent (PATH without it),
and the real sacct refusing (accounting_storage/none: it exits 1, "Slurm accounting storage
is disabled"; skipped where slurm-client is not installed). The parser is tested on output
in sacct's --parsable2 format (SLURM 22.05: header line, then the job and its steps), and
the filled columns through a stand-in `sacct` executable that prints that output.
"""

import json
import os
import shutil

import numpy as np
import pytest
from helpers import check, child_env, run_cli
from test_scaling_report import write_run

from hpctrain.bench.sacct import job_id, parse

# `sacct --jobs 4711,4712_3 --parsable2 --format JobID,Elapsed,MaxRSS,TotalCPU` as SLURM
# 22.05 prints it: MaxRSS only on the steps, TotalCPU of the job summed over its steps.
PARSABLE2 = """\
JobID|Elapsed|MaxRSS|TotalCPU
4711|00:02:13||00:04.123
4711.batch|00:02:13|10240K|00:01.500
4711.extern|00:02:13|1024K|00:00:00
4711.0|00:02:10|356812K|00:02.623
4712_3|00:00:41||00:01.002
4712_3.batch|00:00:41|1.50M|00:01.002
"""


def test_parse_takes_elapsed_and_cpu_from_the_job_and_maxrss_from_its_largest_step():
    assert parse(PARSABLE2) == {
        "4711": {"Elapsed": "00:02:13", "MaxRSS": "356812K", "TotalCPU": "00:04.123"},
        "4712_3": {"Elapsed": "00:00:41", "MaxRSS": "1.50M", "TotalCPU": "00:01.002"},
    }
    assert parse("") == {}


def slurm_runs(tmp_path):
    """Three finished runs: job 4711 (summary.json's slurm.job_id), job 4712 from the
    directory name train.sbatch gives an array task, and one that was no SLURM job."""
    rng = np.random.default_rng(0)
    runs = tmp_path / "runs"
    runs.mkdir()
    first = runs / "w1-2"
    write_run(runs, "w1-2", rng, 2, "ring", 64, 32)
    summary = json.loads((first / "summary.json").read_text())
    summary["slurm"] = {"job_id": "4711", "nodes": 1, "tasks": 2, "cpus_per_task": 1}
    (first / "summary.json").write_text(json.dumps(summary))
    write_run(runs, "hpctrain-run-4712-r3", rng, 1, "ring", 64, 64)
    write_run(runs, "local-1", rng, 1, "ring", 64, 64)
    return [first, runs / "hpctrain-run-4712-r3", runs / "local-1"]


def test_job_ids_come_from_the_summary_else_the_directory_name(tmp_path):
    first, array_task, local = slurm_runs(tmp_path)
    assert [job_id(str(p)) for p in (first, array_task, local)] == ["4711", "4712", None]


def path_with(tmp_path, **programs):
    """A PATH of one folder holding git and the given executables (name: script text)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("git"), bin_dir / "git")
    for name, text in programs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return str(bin_dir)


def report(tmp_path, env):
    out = tmp_path / "report"
    proc = check(run_cli(["bench", "report", *slurm_runs(tmp_path), "--out", out], env=env))
    record = json.loads((out / "scaling.json").read_text())
    return proc, {os.path.basename(r["path"]): r.get("sacct") for r in record["runs"]}, out


def test_without_sacct_the_columns_say_so_and_the_report_is_made(tmp_path):
    env = child_env()
    env["PATH"] = path_with(tmp_path)
    proc, sacct, out = report(tmp_path, env)
    assert sacct["local-1"] is None
    assert sacct["w1-2"] == {"job_id": "4711", "Elapsed": "sacct not found",
                             "MaxRSS": "sacct not found", "TotalCPU": "sacct not found"}
    assert sacct["hpctrain-run-4712-r3"]["job_id"] == "4712"
    assert "| w1-2 | 4711 | sacct not found | sacct not found | sacct not found |" in proc.stdout
    assert "SLURM accounting (sacct)" in (out / "scaling.md").read_text()


@pytest.mark.skipif(shutil.which("sacct") is None, reason="slurm-client (sacct) not installed")
def test_a_real_sacct_without_accounting_storage_is_reported_not_fatal(tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=hpctrain-test\nSlurmctldHost=localhost\n"
                    "AccountingStorageType=accounting_storage/none\n")
    _, sacct, _ = report(tmp_path, child_env(SLURM_CONF=conf))
    assert sacct["w1-2"]["Elapsed"] == "sacct failed: Slurm accounting storage is disabled"


def test_sacct_answers_fill_the_columns(tmp_path):
    # Stand-in for a sacct with accounting: prints the recorded output for exactly the
    # query bench report must make, and fails on any other.
    script = ("#!/bin/sh\n"
              '[ "$*" = "--jobs 4711,4712 --parsable2 --format JobID,Elapsed,MaxRSS,TotalCPU" ]'
              " || { echo \"sacct: error: unexpected arguments: $*\" >&2; exit 1; }\n"
              f"printf '%s' '{PARSABLE2.replace('4712_3', '4712')}'\n")  # builtin: no cat on PATH
    env = child_env()
    env["PATH"] = path_with(tmp_path, sacct=script)
    proc, sacct, _ = report(tmp_path, env)
    assert sacct["w1-2"] == {"job_id": "4711", "Elapsed": "00:02:13", "MaxRSS": "356812K",
                             "TotalCPU": "00:04.123"}
    assert sacct["hpctrain-run-4712-r3"]["MaxRSS"] == "1.50M"
    assert "| hpctrain-run-4712-r3 | 4712 | 00:00:41 | 1.50M | 00:01.002 |" in proc.stdout
