"""ring, doubling and native under a real mpiexec: right sums and identical bits on every rank.

One launch per rank count runs the whole grid (the three algorithms, sizes 0, 1, p-1, p+1,
1001, 100003, float32 and float64, a 2-D buffer, a sub-communicator, a wildcard receive posted
around the calls) inside, so the suite stays fast; tests/mpi/comm_allreduce.py checks each
case with hpctrain.comm.verify (numpy.sum in float64 of every rank's input, identical bits).
"""

import os
import random
import re
import subprocess
import sys

import pytest
from helpers import REPO, run_mpi_script

WORKER = os.path.join(REPO, "tests", "mpi", "comm_allreduce.py")
NAMES = ["native", "ring", "doubling"]


def expected_cases(ranks: int) -> int:
    """What the worker runs per name: the grid, the 2-D buffer, the NaN payloads (3 sizes, 2
    dtypes) and, with several ranks, the call beside user messages and the grid of 4 sizes
    on half the world."""
    grid = 2 * len({0, 1, max(ranks - 1, 0), ranks + 1, 1001, 100_003})
    return len(NAMES) * (grid + 1 + 6 + (1 + 2 * 4 if ranks > 1 else 0))


# 8: where MPICH's own Allreduce leaves NaNs with different bits on different ranks
@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5, 7, 8])
def test_every_algorithm_sums_right_with_identical_bits(ranks):
    seed = random.randrange(2**31)
    # shm and auto have their own launches (tests/test_comm_shm.py)
    proc = run_mpi_script(ranks, WORKER, [seed, ",".join(NAMES)], timeout=180)
    report = f"seed {seed}, exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, report
    match = re.fullmatch(r"ok (\d+) (\S+)", proc.stdout.strip())
    assert match, report
    assert int(match.group(1)) == expected_cases(ranks), report
    assert match.group(2).split(",") == NAMES, report


def test_importing_the_package_starts_neither_mpi_nor_numba():
    code = ("import hpctrain.comm, sys; "
            "print('mpi4py.MPI' in sys.modules, 'numba' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"], proc.stdout


def test_names_and_the_tree_alias():
    from hpctrain.comm import canonical_name, get_allreduce, names
    from hpctrain.errors import InputError

    assert names() == ["auto", "doubling", "native", "ring", "shm"]
    assert get_allreduce("tree") is get_allreduce("doubling")
    assert canonical_name("tree") == "doubling"
    with pytest.raises(InputError, match=r"unknown allreduce algorithm 'nope' \(known: auto, "):
        get_allreduce("nope")
