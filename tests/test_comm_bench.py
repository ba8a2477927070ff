"""`hpctrain bench allreduce` under a real mpiexec: table, CSV and plot, checks, bad flags.

Timings are printed, never asserted: only the structure and the correctness checks are.
"""

import csv
import os

import pytest
from helpers import REPO, check, child_env, run_cli, run_mpi, run_mpi_script

BROKEN = os.path.join(REPO, "tests", "mpi", "comm_bench_broken.py")
DEFAULT_ALGORITHMS = ("ring", "doubling", "shm", "shm-window", "native", "auto")


def table_rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line and not line.startswith("#")]


def test_bench_prints_table_and_appends_csv_and_plot(tmp_path):
    out_csv, out_png = tmp_path / "allreduce.csv", tmp_path / "allreduce.png"
    env = child_env(XDG_CACHE_HOME=tmp_path / "cache", HPCTRAIN_AUTO_BUDGET_S=0.02)
    args = ["bench", "allreduce", "--sizes", "4K,12,64K", "--repeats", "3", "--warmup", "1",
            "--csv", out_csv, "--plot", out_png]
    proc = check(run_mpi(3, args, timeout=180, env=env))
    assert proc.stdout.count("# allreduce, in place, 3 ranks, float32") == 1  # rank 0 only
    assert proc.stdout.count("# vs native: busbw / native's busbw at the same size, native "
                             "being MPI's own Allreduce") == 1
    rows = table_rows(proc.stdout)
    assert [(r[0], r[2]) for r in rows] == [
        (size, name) for size in ("4096", "12", "65536") for name in DEFAULT_ALGORITHMS]
    for size, count, name, time_us, algbw, busbw, ratio in rows:
        assert int(count) * 4 == int(size)
        assert float(time_us) > 0
        # busbw = algbw * 2(p-1)/p, up to the printed rounding
        assert float(busbw) == pytest.approx(float(algbw) * 4 / 3, abs=2e-3)
        assert (ratio == "1.00") if name == "native" else (float(ratio) > 0)
    # `tree` is doubling's old name: accepted, reported under the registered name, once
    check(run_mpi(2, args[:4] + ["--algorithms", "ring,tree,doubling", "--repeats", "2",
                                 "--csv", out_csv], timeout=180, env=env))
    with open(out_csv) as f:
        written = list(csv.DictReader(f))
    assert [(r["ranks"], r["algorithm"]) for r in written] == (
        [("3", name) for name in DEFAULT_ALGORITHMS] * 3 + [("2", "ring"), ("2", "doubling")] * 3)
    assert all(r["busbw_vs_native"] == "" for r in written[3 * len(DEFAULT_ALGORITHMS):])
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, message", [
    ("wrong", "wrong gave wrong sums at 4096 bytes"),
    ("uneven", "uneven left different bits on different ranks at 4096 bytes "
               "(rank 1 differs from rank 0)"),
])
def test_bench_refuses_to_time_a_wrong_algorithm(name, message):
    proc = run_mpi_script(2, BROKEN, [name], timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count(message) == 1, proc.stderr  # reported once, by rank 0
    assert f" {name} " not in proc.stdout  # no timing row for it


def test_bench_bad_flag_under_mpi_exits_2_on_every_rank_reported_once():
    proc = run_mpi(2, ["bench", "allreduce", "--algorithms", "ring,nope"], timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("hpctrain: error:") == 1, proc.stderr
    assert "unknown allreduce algorithm 'nope' (known: " in proc.stderr


@pytest.mark.parametrize("flags, message", [
    (["--sizes", "4K,6"], "--sizes: 6 is not a positive multiple of 4 bytes"),
    (["--sizes", "4K,lots"], "--sizes: cannot read 'lots'"),
    (["--csv", "/nonexistent-dir/x.csv"], "/nonexistent-dir: directory does not exist"),
    (["--plot", "x.jpeg"], "x.jpeg: expected one of .png, .pdf, .svg"),
])
def test_bench_bad_flags_exit_2(flags, message, tmp_path):
    proc = run_cli(["bench", "allreduce", "--repeats", "1", *flags], timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
