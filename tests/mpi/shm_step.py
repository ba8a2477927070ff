"""Worker: the zero-copy step buffer (comm/shm_step.py) on this many ranks, in these layouts.

Run as `mpiexec -n P python shm_step.py SEED LAYOUT ...`: for each layout ("real", or a
HPCTRAIN_FAKE_NODES value like 2x2) the worker sets the variable, makes a new communicator
(whose node split reads it), and for float32 and float64 buffers of several lengths runs three
steps: fresh random inputs written into `mine`, `reduce()`, and then
- the sum lies in the window itself (no copy: it shares memory with the window's rows);
- every rank holds the bits that the copying `shm` gives for the same inputs;
- the sum matches numpy.sum in float64 of every rank's input (hpctrain.comm.verify);
- rank 0 reads each sum only after sleeping, while the others go on to the next step: the
  next step must not overwrite a sum before everyone has read it.

Rank 0 prints `layout L: nodes 2,2 cases N` per layout, then `ok CASES` or the failures.
"""

import os
import sys
import time

import numpy as np
from mpi4py import MPI

from hpctrain.comm import get_allreduce, topology, verify
from hpctrain.comm.shm_step import SharedStepBuffer

world = MPI.COMM_WORLD
rank, p = world.Get_rank(), world.Get_size()
seed, layouts = int(sys.argv[1]), sys.argv[2:]
shm = get_allreduce("shm")
failures, total_cases = [], 0


def one_case(comm, buffer, n, dtype, case):
    data = verify.inputs(rank, n, dtype, seed, case)
    buffer.mine[:] = data
    summed = buffer.reduce()
    if rank == 0:
        time.sleep(0.02)  # the others are in the next step already (or waiting for us)
    problems = []
    if not np.shares_memory(summed, buffer.window.bytes):
        problems.append("the sum is not in the window")
    seen = summed.copy()
    copied = data.copy()
    shm(comm, copied)
    if not np.array_equal(seen.view(np.uint8), copied.view(np.uint8)):
        problems.append("bits differ from the copying shm")
    problems.append(verify.uneven_bits(comm, seen) or verify.wrong_sums(comm, data, seen))
    return [f"{problem} (n={n} {np.dtype(dtype).name} case {case})"
            for problem in problems if problem]


for layout in layouts:
    if layout == "real":
        os.environ.pop(topology.FAKE_NODES_VAR, None)
    else:
        os.environ[topology.FAKE_NODES_VAR] = layout
    comm = world.Dup()
    sizes = topology.of(comm).node_sizes
    cases = 0
    for n in sorted({1, p + 1, 1001, 100_003}):
        for dtype in (np.float32, np.float64):
            buffer = SharedStepBuffer(comm, n, dtype)
            for _ in range(3):
                cases += 1
                failures += one_case(comm, buffer, n, dtype, cases)
            buffer.close()
    comm.Free()
    total_cases += cases
    if rank == 0:
        print(f"layout {layout}: nodes {','.join(map(str, sizes))} cases {cases}", flush=True)

everything = [f for found in world.allgather(failures) for f in found]
if rank == 0:
    print("\n".join(sorted(set(everything))) if everything else f"ok {total_cases}", flush=True)
sys.exit(1 if everything else 0)
