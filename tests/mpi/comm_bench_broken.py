"""Worker: `hpctrain bench allreduce` on a deliberately broken algorithm must refuse to time it.

`mpiexec -n P python comm_bench_broken.py NAME`, NAME one of:
- wrong: the sum plus one on every element (outside any rounding tolerance);
- uneven: the right sum, but rank 1 nudges one element by one ulp (different bits per rank).
Both are registered for this process only, then the real CLI runs the benchmark on them.
"""

import sys

import numpy as np
from mpi4py import MPI

from hpctrain.cli import main
from hpctrain.comm import registry
from hpctrain.comm.agreement import checked


def wrong(comm, buf):
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    buf += 1


def uneven(comm, buf):
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    if comm.Get_rank() == 1:
        buf[0] = np.nextafter(buf[0], np.inf)


if __name__ == "__main__":
    name = sys.argv[1]
    registry.ALGORITHMS[name] = checked({"wrong": wrong, "uneven": uneven}[name])
    main(["bench", "allreduce", "--algorithms", f"native,{name}", "--sizes", "4K",
          "--repeats", "2", "--warmup", "1"])
