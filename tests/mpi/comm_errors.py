"""Worker: bad allreduce buffers must raise on every rank (or abort the job), never hang.

`mpiexec -n P python comm_errors.py MODE`:
- first-call: each bad case below, for every registered algorithm and the alias `tree`, is
  the first call for its key: every rank must raise InputError (printed as
  `rank R: <case>: <message>`), then a good allreduce proves the ranks are still in step;
  finally the last error escapes the way the CLI reports it (rank 0 prints it) and every
  rank exits 2.
- later-read-only: after a good call, rank 1 alone passes a read-only buffer of the same key:
  it cannot warn the others without a collective, so the job must abort (MPI Abort, exit 2).
- later-length: with HPCTRAIN_ALLREDUCE_CHECK=always in the environment, after a good call
  the last rank alone passes one element more: every rank raises, exit 2.
- switch-length ALGO N: lengths N and N + 1 are both agreed, then the last rank alone passes
  N + 1 while the others pass N: no collective per call can see it, so the algorithm must see
  it where the data meet and abort the job (exit 2), never return a wrong sum.
"""

import os
import sys

import numpy as np
from mpi4py import MPI

from hpctrain.cli import report_error
from hpctrain.comm import get_allreduce, names
from hpctrain.errors import EXIT_BAD_INPUT, InputError


def say(line: str) -> None:
    """One write per line: ranks' lines reach mpiexec's output whole, never interleaved."""
    os.write(1, (line + "\n").encode())


def bad_buffers(rank: int, p: int) -> dict:
    """case name -> this rank's buffer (only some ranks' buffers are bad)."""
    good = np.ones(10, dtype=np.float32)
    last = p - 1
    read_only = good.copy()
    read_only.flags.writeable = False
    return {
        "not-contiguous": np.ones(20, dtype=np.float32)[::2] if rank == last else good,
        "read-only": read_only if rank == last else good,
        "int-dtype": np.ones(10, dtype=np.int32),
        "byte-order": np.ones(10, dtype=">f4") if rank == last else good,
        "not-array": [1.0] * 10 if rank == last else good,
        "dtype-mismatch": np.ones(10, dtype=np.float64) if rank == last else good,
        "length-mismatch": np.ones(11, dtype=np.float32) if rank == last else good,
    }


def first_call(comm) -> None:
    rank, p = comm.Get_rank(), comm.Get_size()
    last_error = None
    for name in [*names(), "tree"]:
        for case, buf in bad_buffers(rank, p).items():
            # A fresh communicator each time, so that this really is the first call.
            fresh = comm.Dup()
            try:
                get_allreduce(name)(fresh, buf)
                say(f"rank {rank}: {name} {case}: NOT RAISED")
            except InputError as err:
                say(f"rank {rank}: {name} {case}: {err}")
                last_error = err
            fresh.Free()
    try:
        get_allreduce("no-such-algorithm")
    except InputError as err:
        say(f"rank {rank}: unknown: {err}")
    total = np.full(5, rank + 1.0)
    get_allreduce("ring")(comm, total)
    say(f"rank {rank}: after errors sum {total[0]:g}")
    report_error(last_error)
    sys.exit(EXIT_BAD_INPUT)


def later_call(comm, mode: str) -> None:
    rank, p = comm.Get_rank(), comm.Get_size()
    allreduce = get_allreduce("ring")
    allreduce(comm, np.ones(10, dtype=np.float32))
    buf = np.ones(10, dtype=np.float32)
    if mode == "later-read-only" and rank == 1:
        buf.flags.writeable = False
    if mode == "later-length" and rank == p - 1:
        buf = np.ones(11, dtype=np.float32)
    try:
        allreduce(comm, buf)
    except InputError as err:
        say(f"rank {rank}: raised")
        report_error(err)
        sys.exit(EXIT_BAD_INPUT)
    say(f"rank {rank}: NOT RAISED")


def switch_length(comm, name: str, n: int) -> None:
    rank, p = comm.Get_rank(), comm.Get_size()
    allreduce = get_allreduce(name)
    for length in (n, n + 1, n):  # both keys agreed, the window (shm) sized for the larger
        allreduce(comm, np.ones(length, dtype=np.float32))
    buf = np.ones(n + 1 if rank == p - 1 else n, dtype=np.float32)
    allreduce(comm, buf)
    right = bool((buf == p).all())
    say(f"rank {rank}: NOT CAUGHT, sum {'right' if right else 'WRONG'}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "switch-length":
        switch_length(MPI.COMM_WORLD, sys.argv[2], int(sys.argv[3]))
    elif mode == "first-call":
        first_call(MPI.COMM_WORLD)
    else:
        later_call(MPI.COMM_WORLD, mode)
