"""`hpctrain bench scaling --layouts`: ranks x threads per rank on one node's cores.

One real sweep of this machine's 2 cores (2x1 and 1x2, tiny shapes as in test_scaling.py;
speed is never asserted): every layout ran with its ranks and `--threads`, the CSV and
scaling.md carry layout and threads columns, and scaling.md ends with the best layout.
"""

import csv

import pytest
from helpers import check, fails, run_cli

from hpctrain.bench.scaling_layouts import best_layout_line, layouts_of, parse_layouts
from hpctrain.bench.scaling_points import Point
from hpctrain.errors import InputError

TINY = ["--features", "6", "--hidden", "8", "--classes", "2", "--steps", "4",
        "--global-batch", "48"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("layouts") / "study"
    proc = check(run_cli(["bench", "scaling", "--mode", "strong", "--layouts", "2", *TINY,
                          "--allreduce", "ring", "--repeats", "1", "--out", out],
                         timeout=240))
    return out, proc


def test_a_sweep_of_two_cores_runs_2x1_and_1x2_and_names_the_best(sweep):
    out, proc = sweep
    rows = read_csv(out / "scaling.csv")
    assert [(r["layout"], r["ranks"], r["threads"]) for r in rows] == [
        ("2x1", "2", "1"), ("1x2", "1", "2")]
    assert all(r["status"] == "ok" and r["global_batch"] == "48" and r["mode"] == "strong"
               for r in rows)
    assert float(rows[0]["speedup"]) == 1.0 and rows[0]["efficiency"] == ""
    for r in rows:  # each run really had its ranks and threads, and the launcher was told
        log = (out / "logs" / f"{r['layout']}-ring-r0.log").read_text()
        assert f"-n {r['ranks']} " in log and f"--threads {r['threads']}" in log
    best = max(rows, key=lambda r: float(r["samples_per_s"]))
    line = (f"Best layout: {best['layout']} ({best['ranks']} rank"
            f"{'s' if best['ranks'] != '1' else ''} x {best['threads']} thread"
            f"{'s' if best['threads'] != '1' else ''}), "
            f"{float(best['samples_per_s']):,.0f} samples/s.")
    table = (out / "scaling.md").read_text()
    assert table.rstrip().splitlines()[-1] == line
    assert "| layout | ranks | threads | algorithm |" in table
    assert line in proc.stdout and "layouts: 2x1, 1x2" in proc.stdout
    assert (out / "scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_report_reads_the_sweep_back_as_layouts(sweep, tmp_path):
    out, _ = sweep
    runs = sorted(str(p) for p in (out / "runs").iterdir())
    check(run_cli(["bench", "report", *runs, "--out", tmp_path], timeout=120))
    assert [r["layout"] for r in read_csv(tmp_path / "scaling.csv")] == ["2x1", "1x2"]
    assert (tmp_path / "scaling.md").read_text().rstrip().splitlines()[-1].startswith(
        "Best layout: ")


def test_layouts_are_every_way_of_writing_the_cores_as_ranks_times_threads():
    assert layouts_of(16) == [(16, 1), (8, 2), (4, 4), (2, 8), (1, 16)]
    assert layouts_of(12) == [(12, 1), (6, 2), (4, 3), (3, 4), (2, 6), (1, 12)]
    assert layouts_of(1) == [(1, 1)]
    assert parse_layouts("2") == [(2, 1), (1, 2)]
    assert parse_layouts("4x4, 8X2") == [(8, 2), (4, 4)]  # named ones, fewest threads first
    with pytest.raises(InputError, match="same cores"):
        parse_layouts("8x2,4x2")


def test_the_best_layout_is_named_per_algorithm():
    def point(ranks, threads, alg, rate):
        return Point(ranks, alg, 1, 0, [], samples_per_s=rate, threads=threads)

    points = [point(4, 1, "ring", 10.0), point(2, 2, "ring", 30.0), point(1, 4, "ring", 20.0)]
    assert best_layout_line(points) == "Best layout: 2x2 (2 ranks x 2 threads), 30 samples/s."
    points += [point(4, 1, "shm", 5e4), point(2, 2, "shm", None)]
    assert best_layout_line(points) == ("Best layout per algorithm: ring 2x2 (30 samples/s); "
                                        "shm 4x1 (50,000 samples/s).")


@pytest.mark.parametrize("args, fragment", [
    (["--mode", "strong", "--layouts", "0"], "--layouts must be a core count from 1"),
    (["--mode", "strong", "--layouts", "8by2"], "--layouts must be a core count (16) or"),
    (["--mode", "strong", "--layouts", "8x2,2x2"], "every layout must use the same cores"),
    (["--mode", "weak", "--layouts", "2"], "--layouts needs --mode strong"),
    (["--mode", "strong", "--layouts", "2", "--ranks", "2"], "exclude each other"),
    (["--mode", "strong", "--layouts", "2", "--bind-args", "{cores}"], "only {threads}"),
    (["--mode", "strong", "--bind-args", "-bind-to core:{threads}"], "is for --layouts"),
])
def test_bad_layout_options_are_one_line_exit_2_before_anything_runs(tmp_path, args,
                                                                      fragment):
    out = tmp_path / "out"
    fails(["bench", "scaling", *args, "--out", out], fragment, timeout=60)
    assert not out.exists()
