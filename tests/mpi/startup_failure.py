"""Under mpiexec: a start-up check that fails on one rank only, with a non-InputError.

    mpiexec -n P python startup_failure.py FAILING_RANK

Every rank must leave collective_check with the same RunFailed (no rank waits forever in a
later collective); the CLI's rule then prints it once and exits 1.
"""

import sys

from mpi4py import MPI

from hpctrain.errors import RunFailed
from hpctrain.failures import collective_check

comm = MPI.COMM_WORLD
failing = int(sys.argv[1])


def check():
    if comm.Get_rank() == failing:
        raise RuntimeError("broken file on this rank only")
    return "fine"


try:
    collective_check(comm, check)
except RunFailed as err:
    comm.Barrier()  # every rank got here: nobody is stuck
    if comm.Get_rank() == 0:
        print(f"all ranks stopped: {err}")
    sys.exit(1)
print("no failure seen")
