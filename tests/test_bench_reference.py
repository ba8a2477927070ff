"""`--reference FILE` on `bench scaling` and `bench allreduce`, and the provenance of results.

Real runs (a one-rank scaling study, `mpiexec -n 2` allreduces), real reference files: a
value far above what this machine measures is a regression (exit 1, one line), a value far
below passes (exit 0), and a file that cannot be used stops the command before anything is
measured (exit 2, one line naming the file).
"""

import csv
import json
import socket
import subprocess

import pytest
from helpers import REPO, check, child_env, fails, own_lines, run_cli, run_mpi

from hpctrain.bench.provenance import FIELDS

TINY = ["--features", "6", "--hidden", "8", "--classes", "2", "--steps", "4"]
HOST = socket.gethostname()
GIT_HEAD = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def toml_reference(path, kind, entries, hostname=HOST):
    """A reference file with one machine matching `hostname` and `entries` of `kind`."""
    lines = ["[machine.here]", f"hostname = {json.dumps(hostname)}"]
    for entry in entries:
        lines.append(f"[[machine.here.{kind}]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def scaling_study(tmp_path, name, reference):
    return run_cli(["bench", "scaling", "--mode", "strong", "--ranks", "1", *TINY,
                    "--global-batch", "16", "--repeats", "1", "--out", tmp_path / name,
                    "--reference", reference], timeout=240)


def regression_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("REGRESSION: ")]


def test_scaling_regression_exits_1_and_a_pass_exits_0(tmp_path):
    slow = {"ranks": 1, "algorithm": "ring", "metric": "samples_per_s", "value": 1.0,
            "tolerance": 0.5}
    fast = dict(slow, value=1e15, tolerance=0.1)
    proc = check(scaling_study(tmp_path, "pass",
                               toml_reference(tmp_path / "ok.toml", "scaling", [slow])))
    assert "1 checked, 0 regressions" in proc.stdout
    # the faster-than-reference note, not a failure
    assert "better than" in proc.stdout
    record = json.loads((tmp_path / "pass" / "scaling.json").read_text())
    assert set(FIELDS) <= set(record["provenance"])
    assert record["provenance"]["hostname"] == HOST
    assert record["provenance"]["git_commit"].split("+")[0] == GIT_HEAD
    assert record["provenance"]["mpi_library"]  # from the run's summary.json
    assert record["points"][0]["samples_per_s"] > 0

    proc = scaling_study(tmp_path, "regressed",
                         toml_reference(tmp_path / "bad.toml", "scaling", [fast]))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = regression_lines(proc.stderr)
    assert "ranks=1 algorithm=ring samples_per_s" in line and "reference 1e+15" in line


def test_allreduce_regression_exits_1_on_every_rank_and_a_pass_exits_0(tmp_path):
    args = ["bench", "allreduce", "--sizes", "4K", "--algorithms", "ring,native",
            "--repeats", "2", "--warmup", "1", "--csv", tmp_path / "ar.csv"]
    passing = {"ranks": 2, "size": "4K", "algorithm": "ring", "metric": "busbw_GBps",
               "value": 1e-6, "tolerance": 0.5}
    slow_time = {"ranks": 2, "size": 4096, "algorithm": "native", "metric": "time_us",
                 "value": 1e-3, "tolerance": 0.2}  # lower is better: 1 ns per call
    unmeasured = dict(passing, ranks=64)
    ref = toml_reference(tmp_path / "ar.toml", "allreduce", [passing, slow_time, unmeasured])
    proc = run_mpi(2, [*args, "--reference", ref], timeout=180)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = regression_lines(proc.stderr)
    assert "algorithm=native time_us" in line
    assert "not measured in this run: ranks=64" in proc.stdout
    assert "2 checked, 1 regressions" in proc.stdout

    ref = tmp_path / "ok.json"  # JSON as well as TOML, a list of hostname patterns
    ref.write_text(json.dumps({"machine": {"here": {"hostname": [HOST],
                                                     "allreduce": [passing]}}}))
    proc = check(run_mpi(2, [*args, "--reference", ref], timeout=180))
    assert not regression_lines(proc.stderr)
    assert f"# provenance: commit {GIT_HEAD[:12]}" in proc.stdout
    with open(tmp_path / "ar.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4  # two runs appended, two algorithms each
    for row in rows:
        assert row["git_commit"].split("+")[0] == GIT_HEAD and row["hostname"] == HOST
        assert row["numpy"] and row["numba"] and row["mpi4py"] and row["cpu_model"]


BAD_REFERENCES = [
    ("broken.toml", "[machine.here\n", "not a valid reference file"),
    ("broken.json", "{", "not a valid reference file"),
    ("empty.json", "{}", "expected [machine.NAME] tables"),
    ("nohost.toml", None, "no machine matches this host"),
    ("metric.toml", {"metric": "speed", "value": 1, "tolerance": 0.1}, "metric 'speed'"),
    ("key.toml", {"rank": 2, "metric": "speedup", "value": 1, "tolerance": 0.1},
     "unknown key 'rank'"),
    ("tol.toml", {"metric": "speedup", "value": 1, "tolerance": 10}, "tolerance in [0, 1)"),
    ("value.toml", {"metric": "speedup", "value": "fast", "tolerance": 0.1},
     "expected a number"),
]


@pytest.mark.parametrize("name, content, message", BAD_REFERENCES)
def test_a_bad_reference_file_is_exit_2_naming_it_before_anything_runs(tmp_path, name,
                                                                       content, message):
    path = tmp_path / name
    if content is None:
        toml_reference(path, "scaling", [{"metric": "speedup", "value": 1, "tolerance": 0.1}],
                       hostname="no-such-host-*")
    elif isinstance(content, dict):
        toml_reference(path, "scaling", [content])
    else:
        path.write_text(content)
    out = tmp_path / "study"
    fails(["bench", "scaling", "--mode", "strong", "--ranks", "1", "--out", out,
           "--reference", path], message, str(path))
    assert not out.exists()


def test_a_bad_reference_file_stops_every_allreduce_rank_with_one_line(tmp_path):
    path = toml_reference(tmp_path / "scaling-only.toml", "scaling",
                          [{"metric": "speedup", "value": 1, "tolerance": 0.1}])
    proc = run_mpi(2, ["bench", "allreduce", "--sizes", "4K", "--reference", path],
                   timeout=120, env=child_env())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = own_lines(proc.stderr)
    assert str(path) in line and "no [[machine.here.allreduce]] references" in line
    assert "size(B)" not in proc.stdout  # nothing was measured


def test_an_old_allreduce_csv_is_refused_rather_than_misaligned(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("ranks,dtype,size_bytes,count,algorithm,time_us\n2,float32,4096,1024,ring,9\n")
    proc = run_mpi(2, ["bench", "allreduce", "--sizes", "4K", "--csv", old], timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "has other columns" in proc.stderr and str(old) in proc.stderr
    assert old.read_text().count("\n") == 2  # untouched
