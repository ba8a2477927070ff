"""How an allreduce call is timed, by `auto` and by `hpctrain bench allreduce` alike.

Every timed call starts after a barrier, so all ranks enter it together; a call's time is the
slowest rank's (an Allreduce MAX: the collective is done when the last rank is done), and the
time of a series is the median over its calls, robust to the odd descheduled one. The MAX is
exact, so every rank holds the same numbers and any decision taken on them (how many calls to
run, which algorithm won) is the same on every rank.
"""

import numpy as np


def slowest(comm, seconds) -> np.ndarray:
    """Elementwise maximum over the ranks of comm (exact: the same array on every rank)."""
    from mpi4py import MPI  # here, not at the top: importing the module starts no MPI

    mine = np.asarray(seconds, dtype=np.float64)
    most = np.empty_like(mine)
    comm.Allreduce(mine, most, op=MPI.MAX)
    return most


def call_times(comm, call, calls: int, before=None) -> np.ndarray:
    """The slowest rank's time of each of `calls` calls of call(), each after a barrier.

    before(), when given, runs ahead of each barrier, untimed (e.g. restoring the inputs that
    an in-place sum overwrote). Collective.
    """
    from mpi4py import MPI  # here, not at the top: importing the module starts no MPI

    times = np.empty(calls)
    for i in range(calls):
        if before is not None:
            before()
        comm.Barrier()
        start = MPI.Wtime()
        call()
        times[i] = MPI.Wtime() - start
    return slowest(comm, times)


def median_time(comm, call, calls: int, before=None) -> float:
    """Seconds per call: the median over `calls` calls of the slowest rank's time."""
    return float(np.median(call_times(comm, call, calls, before)))
