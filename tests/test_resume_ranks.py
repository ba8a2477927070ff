"""Resuming at another rank count: `--epochs E` means E passes over the data, whatever rank
counts (and so steps per epoch) the run went through. Without --global-batch the global batch
is batch-size x ranks, so the steps per epoch change with the rank count."""

import pytest
from helpers import check, run_mpi
from train_util import checkpoints, make_data, metrics

from hpctrain import checkpoint as ckpt

ROWS, BATCH = 480, 20  # 4 ranks: 120 rows each, 6 steps per epoch; 2 ranks: 12 steps


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("rr") / "data", samples=ROWS, features=5)


def train(ranks, *args):
    return check(run_mpi(ranks, ["train", "--batch-size", BATCH, "--hidden", "4",
                                 "--log-every", "1", *args], timeout=180))


def newest(run):
    return ckpt.load(checkpoints(run)[-1])


def test_epochs_count_passes_over_the_data_across_rank_counts(data, tmp_path):
    run = str(tmp_path / "run")
    train(4, "--data", data, "--out", run, "--epochs", "2")
    assert (newest(run).step, newest(run).epoch) == (12, 2)
    train(2, "--out", run, "--resume", "--epochs", "3")
    last = newest(run)
    # one more pass at 2 ranks is 12 steps of 40 rows: step 24, epoch 3 done, nothing more
    assert (last.step, last.epoch, last.step_in_epoch) == (24, 3, 0)
    steps = [m["step"] for m in metrics(run) if "loss" in m]
    assert steps == list(range(1, 25))


def test_a_mid_epoch_resume_continues_the_epoch_after_the_rows_already_seen(data, tmp_path):
    run = str(tmp_path / "run")
    train(4, "--data", data, "--out", run, "--steps", "9")  # 1.5 epochs: 240 rows of epoch 2
    first = newest(run)
    assert (first.epoch, first.step_in_epoch, first.rng["samples_in_epoch"]) == (1, 3, 240)
    proc = train(2, "--out", run, "--resume", "--epochs", "2", "--steps", "1000")
    # 240 rows seen of epoch 2 = 6 of the 12 two-rank steps: 6 steps remain
    last = newest(run)
    assert (last.step, last.epoch, last.step_in_epoch) == (15, 2, 0)
    assert "epoch 2 continues at its step 7 of 12 (240 of its rows were seen)" in proc.stderr
