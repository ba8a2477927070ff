"""The step buffer in the node's shared window (zero-copy shm), auto's choice made before the
first step, and the allreduce split into waiting and moving bytes.

The window buffer under real mpiexec, 1-5 ranks and pretend multi-node layouts: see
tests/mpi/shm_step.py. Training through it must give one rank's model to 1e-5, as every
algorithm does (tests/test_distributed.py says why 1e-5).
"""

import json
import os
import re

import numpy as np
import pytest
from helpers import check, child_env, run_mpi, run_mpi_script
from train_util import final_params, make_data, summary

from hpctrain.comm import topology

WORKER = os.path.join(os.path.dirname(__file__), "mpi", "shm_step.py")
ATOL = 1e-5
SGD = ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--hidden", "10"]

LAYOUTS = {1: ["real"], 2: ["real", "1+1"], 3: ["real", "1+1+1", "2+1"],
           4: ["real", "2x2", "3+1"], 5: ["real", "2+3"]}


@pytest.mark.parametrize("ranks", sorted(LAYOUTS))
def test_the_window_buffer_sums_in_place(ranks):
    env = child_env()
    env.pop(topology.FAKE_NODES_VAR, None)
    proc = check(run_mpi_script(ranks, WORKER, [ranks, *LAYOUTS[ranks]], timeout=120, env=env))
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"ok {24 * len(LAYOUTS[ranks])}", proc.stdout
    for line, layout in zip(lines, LAYOUTS[ranks], strict=False):
        assert re.fullmatch(rf"layout {re.escape(layout)}: nodes [\d,]+ cases 24", line), line


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("d") / "data", samples=301, features=5, shards=3,
                     val=0.1)


def train_args(data, run, *flags):
    return ["train", "--data", data, "--out", run, "--log-every", "5", "--shuffle", "global",
            "--global-batch", "40", "--steps", "20", *SGD, *flags]


@pytest.fixture(scope="module")
def one_rank(data, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("r") / "one")
    check(run_mpi(1, train_args(data, run, "--allreduce", "ring")))
    return final_params(run)


@pytest.mark.parametrize("ranks,layout", [(2, None), (3, None), (3, "1+1+1"), (4, "2x2"),
                                          (4, "3+1"), (5, "2+3")])
def test_zero_copy_training_gives_one_ranks_model(data, one_rank, tmp_path, ranks, layout):
    run = str(tmp_path / "run")
    env = child_env(**({topology.FAKE_NODES_VAR: layout} if layout else {}))
    check(run_mpi(ranks, train_args(data, run, "--allreduce", "shm"), env=env))
    np.testing.assert_allclose(final_params(run), one_rank, atol=ATOL)
    assert summary(run)["step_reduction"]["reduction"] == "shm-window"


def test_auto_chooses_before_the_first_step_and_caches_it(data, one_rank, tmp_path):
    """A cold cache: auto measures the step buffer's candidates while setting up, says so
    and how long it took; the next job finds the choice cached."""
    env = child_env(XDG_CACHE_HOME=tmp_path / "cache", HPCTRAIN_AUTO_BUDGET_S="0.05")
    facts = []
    for name in ("cold", "warm"):
        run = str(tmp_path / name)
        check(run_mpi(3, train_args(data, run, "--allreduce", "auto"), env=env))
        np.testing.assert_allclose(final_params(run), one_rank, atol=ATOL)
        facts.append(summary(run)["step_reduction"])
    cold, warm = facts
    assert cold["source"] == "measured" and cold["choose_s"] > 0, cold
    assert warm["source"] == "cached" and warm["reduction"] == cold["reduction"], facts
    assert cold["reduction"] in ("doubling", "native", "ring", "shm-window")


def test_bench_tune_fills_the_cache_that_training_reads(data, tmp_path):
    env = child_env(XDG_CACHE_HOME=tmp_path / "cache", HPCTRAIN_AUTO_BUDGET_S="0.02")
    n_params = 5 * 10 + 10 + 10 + 1  # the model of train_args: 5 -> 10 -> 1
    step_elements = n_params + 6 + 2  # + the tail: 5 totals and one READY slot per rank
    proc = check(run_mpi(2, ["bench", "allreduce", "--tune", "--sizes",
                             str(4 * step_elements)], env=env))
    assert "step buffer" in proc.stdout, proc.stdout
    run = str(tmp_path / "run")
    check(run_mpi(2, train_args(data, run, "--allreduce", "auto"), env=env))
    assert summary(run)["step_reduction"]["source"] == "cached"
    with open(tmp_path / "cache" / "hpctrain" / "allreduce-auto.json") as f:
        assert len(json.load(f)["layouts"]) == 2  # the general choice and the step buffer's


def test_the_allreduce_split_shows_waiting_for_a_straggler(data, tmp_path):
    """Rank 1 of 3 is 20 ms slower per step: ranks 0 and 2 wait about 20 ms in each allreduce,
    so the mean rank waits about 13 ms; moving 100 bytes takes far less."""
    run = str(tmp_path / "run")
    check(run_mpi(3, train_args(data, run, "--allreduce", "ring"), timeout=120,
                  env=child_env(HPCTRAIN_FAULT="slow@1:1")))
    split = summary(run)["allreduce_split_s"]
    assert split["waiting"] > 0.008, split
    assert split["waiting"] > 2 * split["moving"], split
