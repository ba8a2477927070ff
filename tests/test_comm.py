"""ring, tree and native under a real mpiexec: right sums and identical bits on every rank.

One launch per rank count runs the whole grid (the three algorithms, sizes 0, 1, p-1, p+1, 1001,
100003, float32 and float64, a 2-D buffer, a sub-communicator, a wildcard receive posted
around the calls) inside, so the suite stays fast; tests/mpi/comm_allreduce.py checks each
case against numpy.sum in float64 of every rank's input.
"""

import os
import random
import re

import pytest
from helpers import REPO, run_mpi_script

WORKER = os.path.join(REPO, "tests", "mpi", "comm_allreduce.py")


@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5, 7])
def test_every_algorithm_sums_right_with_identical_bits(ranks):
    seed = random.randrange(2**31)
    # shm and auto have their own launches (tests/test_comm_shm.py)
    proc = run_mpi_script(ranks, WORKER, [seed, "native,ring,tree"], timeout=180)
    report = f"seed {seed}, exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, report
    match = re.fullmatch(r"ok (\d+)", proc.stdout.strip())
    assert match, report
    # native, ring, tree x 2 dtypes x the distinct sizes of the grid, at least
    distinct_sizes = len({0, 1, max(ranks - 1, 0), ranks + 1, 1001, 100_003})
    assert int(match.group(1)) >= 3 * 2 * distinct_sizes, report
