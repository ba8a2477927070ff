"""A cold start compiles each kernel once per node, the compiles split over its ranks
(hpctrain.node_compile); a warm one compiles nothing."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from helpers import check, child_env, run_cli, run_mpi, run_mpi_script
from train_util import make_data

MPI_SCRIPTS = Path(__file__).parent / "mpi"

# the run's own kernels (the step, the optimizer, the finite check, validation, the
# allreduces' adds and NaN pass) and the step's parts, compiled first on their own ranks
# (forward, which validation calls too, backward, the head). Not the small helpers that
# parts share (weights, layer_output; ring's add_into inside shm's sum_rows): two ranks may
# compile one of those at once, each inside its own part, which costs no time.
CHECKED = ("mlp.loss_grad", "mlp.loss", "optim.adam_step", "finite.all_finite",
           "local_add.sum_into", "shm.sum_rows", "same_nans.canonical_nans",
           "mlp.forward", "mlp.backward_layer", "heads.head_loss_grad")


def saved_kernels(proc) -> Counter:
    """How many times each kernel specialization was compiled and saved, by (name, index),
    from Numba's own report (NUMBA_DEBUG_CACHE=1)."""
    return Counter(re.findall(r"data saved to '.*/([\w.]+)-\d+\.py\d+\.(\d+)\.nbc'",
                              proc.stdout + proc.stderr))


@pytest.mark.mpi
def test_each_kernel_compiles_once_per_node(tmp_path):
    env = child_env(NUMBA_CACHE_DIR=tmp_path / "cache", NUMBA_DEBUG_CACHE=1,
                    XDG_CACHE_HOME=tmp_path / "xdg")  # auto measures too, as on a new machine
    data = make_data(tmp_path / "data", samples=90, features=4, classes=3, val=0.2)
    train = ["train", "--data", data, "--out", tmp_path / "run", "--steps", "3",
             "--hidden", "5", "--optimizer", "adam", "--force"]
    cold = saved_kernels(check(run_mpi(3, train, env=env)))
    checked = {key: count for key, count in cold.items() if key[0] in CHECKED}
    assert {name for name, _ in checked} == set(CHECKED), cold
    assert set(checked.values()) == {1}, cold  # each specialization once on the node
    warm = saved_kernels(check(run_mpi(3, train, env=env)))
    assert not warm, warm


def test_one_rank_compiles_no_allreduce_kernel(tmp_path):
    env = child_env(NUMBA_CACHE_DIR=tmp_path / "cache", NUMBA_DEBUG_CACHE=1)
    data = make_data(tmp_path / "data", samples=40, features=3)
    saved = saved_kernels(check(run_cli(["train", "--data", data, "--out", tmp_path / "run",
                                         "--steps", "2", "--hidden", "4"], env=env)))
    assert saved[("mlp.loss_grad", "1")] == 1
    assert not [name for name, _ in saved if name.split(".")[0] in ("local_add", "same_nans",
                                                                    "shm")], saved


def order_on(ranks, cache) -> list:
    proc = check(run_mpi_script(ranks, MPI_SCRIPTS / "node_compile_order.py", [cache],
                                timeout=120))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def expected_waves(rank, ranks=3, n_parts=4, n_jobs=5) -> list:
    """What node rank `rank` runs, wave by wave: its parts, its first runs, the others' jobs."""
    return [[f"part{i}" for i in range(rank, n_parts, ranks)],
            [f"job{i}" for i in range(rank, n_jobs, ranks)],
            [f"job{i}" for i in range(n_jobs) if i % ranks != rank]]


@pytest.mark.mpi
def test_cold_the_parts_come_first_spread_over_the_ranks_then_the_jobs():
    waves = [[], [], []]  # every rank's records of each wave
    for rank, records in enumerate(order_on(3, "cold")):
        expected = expected_waves(rank)
        assert [name for name, _, _ in records] == sum(expected, []), (rank, records)
        for wave, names in zip(waves, expected, strict=True):
            wave += records[:len(names)]
            records = records[len(names):]
    # a barrier after each wave: nothing of a wave starts before all of the one before ended
    for before, after in zip(waves, waves[1:], strict=False):
        assert max(end for _, _, end in before) <= min(start for _, start, _ in after)


@pytest.mark.mpi
def test_warm_or_alone_every_rank_runs_just_the_jobs():
    jobs = [f"job{i}" for i in range(5)]
    for ranks, cache in ((2, "warm"), (1, "cold")):
        ran = order_on(ranks, cache)
        assert [[name for name, _, _ in records] for records in ran] == [jobs] * ranks
