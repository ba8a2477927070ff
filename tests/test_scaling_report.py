"""`hpctrain bench report` on run directories written by hand, as a SLURM sweep leaves them.

The summaries hold fresh random throughputs and phase times; the expected table is computed
here independently (NumPy medians, speedup against the smallest rank count).
"""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, check, child_env, run_cli

from hpctrain.metrics import PHASES


def write_run(root, name, rng, ranks, algorithm, global_batch, local_batch):
    """A finished run directory: config.json, metrics.jsonl and summary.json as train writes."""
    run = root / name
    run.mkdir()
    phases = dict(zip(PHASES, rng.uniform(1e-4, 5e-3, size=4).tolist(), strict=True))
    step = sum(phases.values()) * rng.uniform(1.0, 1.2)
    summary = {
        "ranks": ranks, "algorithm": algorithm, "device": "cpu",
        "global_batch": global_batch, "local_batch": local_batch, "steps": 30,
        "measured_steps": 29, "step_time_s": step, "samples_per_s": global_batch / step,
        "samples_per_s_per_rank": global_batch / step / ranks,
        "time_to_first_step_s": float(rng.uniform(0.5, 2.0)),
        "comm_fraction": phases["allreduce"] / sum(phases.values()),
        "phase_times_s": phases, "final": {"loss": 0.3, "accuracy": 0.9},
        "mpi_library": "Open MPI v4.1.6, package: Open MPI Distribution, ident: 4.1.6",
        "hosts": [f"node{i:02d}" for i in range(max(1, ranks // 16))],
    }
    (run / "config.json").write_text(json.dumps({"allreduce": algorithm, "steps": 30}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 30, "loss": 0.3}) + "\n")
    (run / "summary.json").write_text(json.dumps(summary))
    return summary


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def expected_points(summaries):
    """{(ranks, alg): (median samples/s, speedup, efficiency, median comm fraction, runs)}.

    The reference is the median of every one-rank run (all algorithms pooled), or without
    one-rank runs each algorithm's smallest rank count p0 (speedup p0 there).
    """
    groups = {}
    for s in summaries:
        groups.setdefault((s["ranks"], s["algorithm"]), []).append(s)
    rates = {k: float(np.median([s["samples_per_s"] for s in v])) for k, v in groups.items()}
    one_rank = [s["samples_per_s"] for s in summaries if s["ranks"] == 1]
    result = {}
    for (p, alg), rate in rates.items():
        if one_rank:
            speedup = rate / float(np.median(one_rank))
        else:
            p0 = min(q for q, a in rates if a == alg)
            speedup = p0 * rate / rates[(p0, alg)]
        comm = float(np.median([s["comm_fraction"] for s in groups[(p, alg)]]))
        result[(p, alg)] = (rate, speedup, speedup / p, comm, groups[(p, alg)])
    return result


def test_strong_table_medians_speedups_and_a_failed_run(tmp_path):
    rng = np.random.default_rng()
    runs = tmp_path / "runs"
    runs.mkdir()
    summaries = [write_run(runs, f"n{p}-{alg}-r{r}", rng, p, alg, 8192, 8192 / p)
                 for p in (1, 2, 4, 16) for alg in ("ring", "tree") for r in (1, 2, 3)]
    # A job that died after writing its config: no summary.json.
    failed = runs / "n8-ring-r1"
    failed.mkdir()
    (failed / "config.json").write_text(json.dumps({"allreduce": "ring"}))
    # A run of one step has no measured throughput: a fourth, failed repeat of (2, tree).
    nan_run = write_run(runs, "n2-tree-r4", rng, 2, "tree", 8192, 4096)
    nan_run["samples_per_s"] = float("nan")
    (runs / "n2-tree-r4" / "summary.json").write_text(json.dumps(nan_run))
    out = tmp_path / "report"

    proc = run_cli(["bench", "report", *sorted(runs.iterdir()), "--out", out])

    assert proc.returncode == 1, proc.stderr
    assert "n8-ring-r1" in proc.stderr and "no summary.json" in proc.stderr
    rows = read_csv(out / "scaling.csv")
    expected = expected_points(summaries)
    ok = [r for r in rows if r["samples_per_s"]]
    assert {(int(r["ranks"]), r["algorithm"]) for r in ok} == set(expected)
    for row in ok:
        key = (int(row["ranks"]), row["algorithm"])
        rate, speedup, efficiency, comm, group = expected[key]
        assert row["mode"] == "strong"
        if key == (2, "tree"):
            assert (row["repeats"], row["failed"]) == ("4", "1")
            assert row["status"].startswith("1/4 repeats FAILED: ")
            assert "no measured throughput" in row["status"]
        else:
            assert (row["repeats"], row["failed"], row["status"]) == ("3", "0", "ok")
        assert float(row["samples_per_s"]) == pytest.approx(rate, rel=1e-12)
        assert (row["global_batch"], row["local_batch"]) == ("8192", str(8192 // key[0]))
        assert float(row["samples_per_s_min"]) == pytest.approx(
            min(s["samples_per_s"] for s in group), rel=1e-12)
        assert float(row["speedup"]) == pytest.approx(speedup, rel=1e-12)
        assert float(row["efficiency"]) == pytest.approx(efficiency, rel=1e-12)
        assert float(row["comm_fraction"]) == pytest.approx(comm, rel=1e-12)
        for ph in PHASES:
            med = np.median([s["phase_times_s"][ph] for s in group])
            assert float(row[f"{ph}_s"]) == pytest.approx(med, rel=1e-12)
    bad = [r for r in rows if not r["samples_per_s"]]
    assert len(bad) == 1 and bad[0]["algorithm"] == "ring" and bad[0]["ranks"] == ""
    assert bad[0]["status"].startswith("FAILED") and bad[0]["samples_per_s"] == ""
    # Rows run by rank count, the algorithms side by side.
    assert [int(r["ranks"]) for r in ok] == sorted(int(r["ranks"]) for r in ok)

    table = (out / "scaling.md").read_text()
    assert table.startswith("# Strong scaling")
    assert "global batch 8192" in table and "Open MPI v4.1.6" in table
    assert "| 16 | tree |" in table and "FAILED" in table
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weak_mode_is_inferred_and_speedup_starts_at_the_smallest_size(tmp_path):
    rng = np.random.default_rng()
    runs = tmp_path / "runs"
    runs.mkdir()
    # train writes the local batch as global / ranks: a float
    summaries = [write_run(runs, f"n{p}-native", rng, p, "native", 512 * p, 512.0)
                 for p in (2, 4, 8)]
    out = tmp_path / "weak"

    check(run_cli(["bench", "report", *runs.iterdir(), "--out", out]))

    rows = read_csv(out / "scaling.csv")
    expected = expected_points(summaries)
    assert [int(r["ranks"]) for r in rows] == [2, 4, 8]
    for row in rows:
        _, speedup, efficiency, _, _ = expected[(int(row["ranks"]), "native")]
        assert row["mode"] == "weak"
        assert float(row["speedup"]) == pytest.approx(speedup, rel=1e-12)
        assert float(row["efficiency"]) == pytest.approx(efficiency, rel=1e-12)
    assert float(rows[0]["speedup"]) == pytest.approx(2.0)
    assert {r["local_batch"] for r in rows} == {"512"}
    table = (out / "scaling.md").read_text()
    assert table.startswith("# Weak scaling") and "weak scaling (local batch 512)" in table

    # The same runs called strong scaling: the table says the global batch was not fixed.
    strong = tmp_path / "strong"
    check(run_cli(["bench", "report", *runs.iterdir(), "--out", strong, "--mode", "strong"]))
    assert "keeps the global batch fixed, but these runs have 1024, 2048, 4096" in \
        (strong / "scaling.md").read_text()


def test_not_a_run_directory_is_bad_input_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "no-such-run"
    proc = run_cli(["bench", "report", missing, "--out", out])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("hpctrain: error:")
    assert str(missing) in proc.stderr
    assert not out.exists()


def test_without_matplotlib_the_table_is_written_and_the_plot_skipped(tmp_path):
    rng = np.random.default_rng()
    runs = tmp_path / "runs"
    runs.mkdir()
    for p in (1, 2):
        write_run(runs, f"n{p}", rng, p, "ring", 1024, 1024 / p)
    out = tmp_path / "out"
    # A None entry in sys.modules makes `import matplotlib` raise ImportError.
    code = ("import sys; sys.modules['matplotlib'] = None; "
            "from hpctrain.cli import main; main(sys.argv[1:])")
    proc = check(subprocess.run(
        [sys.executable, "-c", code, "bench", "report", *map(str, runs.iterdir()),
         "--out", str(out)], capture_output=True, text=True, timeout=120, env=child_env(),
        cwd=REPO))
    assert "matplotlib is not installed" in proc.stdout
    assert (out / "scaling.csv").exists() and (out / "scaling.md").exists()
    assert not (out / "scaling.png").exists()
