"""Under mpiexec: which rank runs which compile job when (hpctrain.node_compile).

    mpiexec -n P python node_compile_order.py cold|warm

Jobs and parts only record [name, start, end] (wall clock; parts take 0.2 s, as a compile
would take a while) on the rank that runs them; rank 0 gathers every rank's record and
prints it as JSON, one list per rank, for the test to check.
"""

import json
import sys
import time

from mpi4py import MPI

from hpctrain.node_compile import compile_on_node

comm = MPI.COMM_WORLD
ran = []


def recorder(name, seconds=0.0):
    def job():
        started = time.time()
        time.sleep(seconds)
        ran.append([name, started, time.time()])
    return job


parts = [recorder(f"part{i}", 0.2) for i in range(4)]
jobs = [recorder(f"job{i}") for i in range(5)]
compile_on_node(comm, jobs, parts, cached=lambda: sys.argv[1] == "warm")
everyone = comm.gather(ran, root=0)
if comm.Get_rank() == 0:
    print(json.dumps(everyone))
