"""`hpctrain bench scaling` on this machine: real `mpiexec -n P hpctrain train` runs.

Tiny shapes (speed is never asserted); what is checked is that every point ran with the
right rank count and batch for its mode, that the table is the median of the run
directories' summaries, and that a failed point is reported and fails the command.
"""

import csv
import io
import json
import time

import pytest
from helpers import check, run_cli

from hpctrain.bench.scaling_jobs import progress_bar
from hpctrain.bench.scaling_plan import dataset_rows, resolve_workload
from hpctrain.data import open_dataset

TINY = ["--features", "6", "--hidden", "8", "--classes", "2", "--steps", "4"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summary(out, name):
    return json.loads((out / "runs" / name / "summary.json").read_text())


def test_strong_scaling_with_a_failing_algorithm(tmp_path):
    out = tmp_path / "strong"
    proc = run_cli(["bench", "scaling", "--mode", "strong", "--ranks", "1,2", *TINY,
                    "--global-batch", "48", "--allreduce", "ring,no-such-algorithm",
                    "--repeats", "1", "--out", out], timeout=240)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 of 4 runs FAILED" in proc.stderr
    assert "scaling:" not in proc.stderr  # no progress bar where stderr is no terminal
    assert "p2-ring-r0: " in proc.stdout  # but one line per run
    rows = {(int(r["ranks"]), r["algorithm"]): r for r in read_csv(out / "scaling.csv")}
    assert set(rows) == {(p, a) for p in (1, 2) for a in ("ring", "no-such-algorithm")}
    for p in (1, 2):
        good, bad = rows[(p, "ring")], rows[(p, "no-such-algorithm")]
        s = summary(out, f"p{p}-ring-r0")
        assert s["ranks"] == p and s["global_batch"] == 48 and s["algorithm"] == "ring"
        assert good["status"] == "ok" and good["mode"] == "strong"
        assert float(good["samples_per_s"]) == pytest.approx(s["samples_per_s"], rel=1e-12)
        assert float(good["comm_fraction"]) == pytest.approx(s["comm_fraction"], rel=1e-12)
        assert bad["status"].startswith("FAILED: exit 2") and "no-such-algorithm" in bad["status"]
        assert bad["samples_per_s"] == ""
        assert (out / "logs" / f"p{p}-no-such-algorithm-r0.log").exists()
    thr1, thr2 = (float(rows[(p, "ring")]["samples_per_s"]) for p in (1, 2))
    assert float(rows[(2, "ring")]["speedup"]) == pytest.approx(thr2 / thr1, rel=1e-12)
    assert float(rows[(2, "ring")]["efficiency"]) == pytest.approx(thr2 / thr1 / 2, rel=1e-12)
    # strong: the data holds 4 global batches, in as many shards as the largest rank count
    data = open_dataset(out / "data")
    assert data.features == 6 and data.rows("train") == 4 * 48
    assert len(data.manifest["splits"]["train"]["shards"]) == 2
    table = (out / "scaling.md").read_text()
    assert "FAILED" in table and "hpctrain bench scaling --mode strong" in table
    assert (out / "scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_weak_scaling_takes_the_median_of_repeats(tmp_path):
    out = tmp_path / "weak"
    check(run_cli(["bench", "scaling", "--mode", "weak", "--ranks", "2,1", *TINY,
                   "--batch-size", "16", "--allreduce", "native", "--repeats", "2",
                   "--out", out], timeout=240))

    rows = read_csv(out / "scaling.csv")
    assert [int(r["ranks"]) for r in rows] == [1, 2]
    for row in rows:
        p = int(row["ranks"])
        runs = [summary(out, f"p{p}-native-r{r}") for r in (0, 1)]
        assert all(s["ranks"] == p and s["local_batch"] == 16 and s["global_batch"] == 16 * p
                   for s in runs)
        median = sum(s["samples_per_s"] for s in runs) / 2  # median of two
        assert float(row["samples_per_s"]) == pytest.approx(median, rel=1e-9)
        assert row["repeats"] == "2" and row["status"] == "ok" and row["mode"] == "weak"
        # summary.json's local batch is a float (global / ranks); the table's is whole
        assert (row["local_batch"], row["global_batch"]) == ("16", str(16 * p))
    thr = [float(r["samples_per_s"]) for r in rows]
    assert float(rows[1]["efficiency"]) == pytest.approx(thr[1] / (2 * thr[0]), rel=1e-12)
    assert "weak scaling (local batch 16)" in (out / "scaling.md").read_text()
    # weak: 4 global batches at the largest rank count
    work = resolve_workload("W1", 6, "8", 2, 16, None)
    assert open_dataset(out / "data").rows("train") == dataset_rows("weak", work, 2) == 4 * 16 * 2


def test_a_point_that_hangs_is_stopped_by_its_timeout(tmp_path):
    out = tmp_path / "slow"
    started = time.monotonic()
    # Ten million steps (about 0.1 ms each here) cannot finish in 3 s: the point times out.
    proc = run_cli(["bench", "scaling", "--mode", "strong", "--ranks", "2", *TINY[:-1],
                    "10000000", "--global-batch", "8", "--repeats", "1", "--timeout", "3",
                    "--out", out], timeout=120)
    assert proc.returncode == 1
    assert time.monotonic() - started < 60
    (row,) = read_csv(out / "scaling.csv")
    assert row["status"] == "FAILED: timed out after 3 s"


@pytest.mark.parametrize("args, message", [
    (["--ranks", "1,0"], "--ranks must be positive"),
    (["--ranks", "1,two"], "--ranks must be comma-separated integers"),
    (["--workload", "W9"], "--workload must be one of W1, W2"),
    (["--hidden", "64,x"], "--hidden must be comma-separated integers"),
    (["--steps", "1"], "--steps must be at least 2"),
    (["--repeats", "0"], "--repeats must be positive"),
])
def test_usage_errors_exit_2_before_running_anything(tmp_path, args, message):
    out = tmp_path / "out"
    proc = run_cli(["bench", "scaling", "--mode", "weak", *args, "--out", out])
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not out.exists()


def test_an_earlier_study_is_not_overwritten(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "scaling.csv").write_text("earlier results\n")
    proc = run_cli(["bench", "scaling", "--mode", "strong", "--ranks", "1", "--out", out])
    assert proc.returncode == 2
    assert "--force" in proc.stderr and str(out) in proc.stderr
    assert (out / "scaling.csv").read_text() == "earlier results\n"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_is_drawn_on_a_terminal_only():
    with progress_bar(3, Terminal()) as bar:
        assert not bar.disable
    with progress_bar(3, io.StringIO()) as bar:
        assert bar.disable
