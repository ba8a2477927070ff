"""A cold start compiles each kernel once per node, the compiles split over its ranks
(hpctrain.node_compile); a warm one compiles nothing."""

import re
from collections import Counter

import pytest
from helpers import check, child_env, run_mpi
from train_util import make_data

# the run's own kernels: the step, the optimizer, the finite check, validation, the
# allreduces' adds and NaN pass (the helpers they call are compiled inside each of them)
TOP_LEVEL = ("mlp.loss_grad", "mlp.loss", "optim.adam_step", "finite.all_finite",
             "local_add.add_into", "local_add.sum_into", "shm.sum_rows",
             "same_nans.canonical_nans")


def saved_kernels(proc) -> Counter:
    """How many times each kernel was compiled and saved (Numba's NUMBA_DEBUG_CACHE=1)."""
    names = re.findall(r"data saved to '.*/([\w.]+)-\d+\.py\d+\.\d+\.nbc'",
                       proc.stdout + proc.stderr)
    return Counter(names)


@pytest.mark.mpi
def test_each_kernel_compiles_once_per_node(tmp_path):
    env = child_env(NUMBA_CACHE_DIR=tmp_path / "cache", NUMBA_DEBUG_CACHE=1,
                    XDG_CACHE_HOME=tmp_path / "xdg")  # auto measures too, as on a new machine
    data = make_data(tmp_path / "data", samples=90, features=4, classes=3, val=0.2)
    train = ["train", "--data", data, "--out", tmp_path / "run", "--steps", "3",
             "--hidden", "5", "--optimizer", "adam", "--force"]
    cold = saved_kernels(check(run_mpi(3, train, env=env)))
    assert {name: cold[name] for name in TOP_LEVEL} == dict.fromkeys(TOP_LEVEL, 1), cold
    warm = saved_kernels(check(run_mpi(3, train, env=env)))
    assert not warm, warm
