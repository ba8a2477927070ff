"""`mpiexec -n P hpctrain train` as one SPMD job: the same training as one rank, any P.

Tolerance: with --shuffle global every global batch holds the same rows whatever P is, so the
only difference between rank counts is the order of the float32 additions in the gradient sum
(per rank, then across ranks). One such reordering changes a sum by a few ulp (~1e-7
relative); through 20 SGD steps at lr 0.05 that stays far below 1e-5 of a parameter, while a
real bug (a wrong row split, a lost or doubled rank, a mean over ranks instead of samples)
moves parameters by 1e-3 or more. So parameters must agree to atol 1e-5.
"""

import os

import numpy as np
import pytest
from helpers import check, run_cli, run_mpi, run_mpi_script
from train_util import checkpoints, final_params, make_data, metrics, summary

ATOL = 1e-5
SGD = ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--hidden", "10"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("d") / "data", samples=301, features=5, shards=3,
                     val=0.1)


def train_args(data, run, *flags):
    return ["train", "--data", data, "--out", run, "--log-every", "5", *flags]


@pytest.fixture(scope="module")
def one_rank(data, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("r") / "one")
    check(run_cli(train_args(data, run, "--shuffle", "global", "--global-batch", "40",
                             "--steps", "20", *SGD)))
    return final_params(run)


@pytest.mark.parametrize("ranks,algorithm", [(2, "ring"), (3, "tree"), (4, "ring"),
                                             (3, "native")])
def test_global_shuffle_matches_one_rank(data, one_rank, tmp_path, ranks, algorithm):
    run = str(tmp_path / "run")
    check(run_mpi(ranks, train_args(data, run, "--shuffle", "global", "--global-batch", "40",
                                    "--steps", "20", "--allreduce", algorithm, *SGD)))
    np.testing.assert_allclose(final_params(run), one_rank, atol=ATOL)
    s = summary(run)
    assert s["ranks"] == ranks and s["algorithm"] == algorithm and s["global_batch"] == 40


def test_every_algorithm_trains_the_same(data, tmp_path):
    results = {}
    for algorithm in ("ring", "tree", "native", "shm", "auto"):
        run = str(tmp_path / algorithm)
        check(run_mpi(3, train_args(data, run, "--steps", "15", "--batch-size", "16",
                                    "--allreduce", algorithm)))
        results[algorithm] = final_params(run)
    np.testing.assert_allclose(results["ring"], results["native"], atol=ATOL)
    for algorithm in ("tree", "shm", "auto"):
        np.testing.assert_allclose(results[algorithm], results["native"], atol=ATOL)
    assert summary(str(tmp_path / "auto"))["auto_choices"]


@pytest.mark.parametrize("rows,ranks", [(10, 3), (3, 4)])
def test_uneven_rows_weight_the_mean_by_samples(tmp_path, rows, ranks):
    """Full-batch training: each step's gradient must be the mean over ALL rows, whether a
    rank holds 4, 3 or 0 of them (3 rows over 4 ranks leaves one rank empty)."""
    data = make_data(tmp_path / "data", samples=rows, features=4, shards=2)
    full = ["--shuffle", "global", "--global-batch", str(rows), "--epochs", "6", *SGD]
    check(run_cli(train_args(data, str(tmp_path / "one"), *full)))
    check(run_mpi(ranks, train_args(data, str(tmp_path / "many"), *full), timeout=120))
    np.testing.assert_allclose(final_params(str(tmp_path / "many")),
                               final_params(str(tmp_path / "one")), atol=ATOL)
    local = ["--batch-size", "2", "--epochs", "2", *SGD]  # local shuffle: ranks run dry
    check(run_mpi(ranks, train_args(data, str(tmp_path / "local"), *local), timeout=120))
    most_rows = -(-rows // ranks)  # every rank steps as often as the fullest one needs
    assert summary(str(tmp_path / "local"))["steps"] == 2 * -(-most_rows // 2)


def test_resume_at_another_rank_count(data, one_rank, tmp_path):
    run = str(tmp_path / "run")
    flags = ["--shuffle", "global", "--global-batch", "40", *SGD]
    check(run_mpi(2, train_args(data, run, "--steps", "8", *flags)))
    check(run_mpi(3, ["train", "--out", run, "--resume", "--steps", "20"]))
    np.testing.assert_allclose(final_params(run), one_rank, atol=ATOL)
    assert summary(run)["ranks"] == 3


def test_exception_on_one_rank_ends_the_job(data, tmp_path):
    run = str(tmp_path / "run")
    proc = run_mpi(3, train_args(data, run, "--steps", "50", "--batch-size", "8"), timeout=60,
                   env={**os.environ, "HPCTRAIN_FAULT": "raise@1:4"})
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "rank 1: RuntimeError: injected fault at step 4" in proc.stderr, proc.stderr


def test_nan_on_one_rank_stops_everyone_and_keeps_the_checkpoint(data, tmp_path):
    run = str(tmp_path / "run")
    proc = run_mpi(3, train_args(data, run, "--steps", "50", "--checkpoint-every", "5",
                                 "--batch-size", "8"),
                   timeout=60, env={**os.environ, "HPCTRAIN_FAULT": "nan@2:8"})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("non-finite loss or gradient at step 8") == 1
    assert [os.path.basename(p) for p in checkpoints(run)] == ["step-00000005.h5"]
    from hpctrain import checkpoint

    assert np.isfinite(checkpoint.load(checkpoints(run)[0]).params).all()
    assert max(m["step"] for m in metrics(run)) <= 5


def test_bad_shard_on_one_rank_is_reported_once_with_exit_2(data, tmp_path):
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(data, copy)
    with open(os.path.join(copy, "train", "shard-00002.h5"), "r+b") as f:
        f.truncate(100)  # only the last rank reads this shard
    proc = run_mpi(3, train_args(copy, str(tmp_path / "run"), "--steps", "3"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hpctrain: error")]
    assert len(errors) == 1 and "shard-00002.h5" in errors[0], proc.stderr


def test_evaluate_is_the_same_on_any_rank_count(data, tmp_path):
    run = str(tmp_path / "run")
    check(run_cli(train_args(data, run, "--steps", "5")))
    args = ["evaluate", "--data", data, "--split", "val", "--checkpoint",
            checkpoints(run)[-1], "--json"]
    one = check(run_cli(args)).stdout
    three = check(run_mpi(3, args)).stdout
    import json

    a, b = json.loads(one), json.loads(three)
    assert a["rows"] == b["rows"] == 30
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6) and a["accuracy"] == b["accuracy"]


def test_a_non_input_error_in_start_up_ends_every_rank():
    """One rank's unexpected exception during the start-up checks (e.g. a library's
    RuntimeError on a broken file) must end every rank, not leave them waiting."""
    script = os.path.join(os.path.dirname(__file__), "mpi", "startup_failure.py")
    proc = run_mpi_script(3, script, ["2"], timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "all ranks stopped: rank 2: RuntimeError: broken file on this rank only" \
        in proc.stdout
    assert "no failure seen" not in proc.stdout


def test_the_records_name_the_straggler(data, tmp_path):
    """Rank 1 of 3 made 20 ms slower per step: metrics.jsonl and summary.json say which rank
    was slowest in the compute phase and by how much."""
    run = str(tmp_path / "run")
    check(run_mpi(3, train_args(data, run, "--steps", "30", "--log-every", "10",
                                "--batch-size", "8"),
                  timeout=120, env={**os.environ, "HPCTRAIN_FAULT": "slow@1:1"}))
    stragglers = summary(run)["stragglers"]
    assert stragglers["compute"]["rank"] == 1
    assert stragglers["compute"]["behind_median_s"] > 0.015
    assert stragglers["compute"]["host"]
    logged = [m["time"]["compute"] for m in metrics(run) if "time" in m]
    assert all(t["slowest_rank"] == 1 and t["behind_median"] > 0.015 for t in logged), logged
