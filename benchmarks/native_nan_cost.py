"""What `native`'s one-NaN pass costs: MPI's Allreduce alone vs `native` (Allreduce + the pass).

    mpiexec -n P python benchmarks/native_nan_cost.py [--sizes 4K,64K,1M,8M,64M] [--repeats 50]

Both are timed like `hpctrain bench allreduce` times (a barrier before each call, the slowest
rank, the median), interleaved per size so machine noise hits both alike. Rank 0 prints one
markdown row per size: the two times and native / MPI.
"""

import argparse

import numpy as np
from mpi4py import MPI

from hpctrain.comm.native import mpi_allreduce, native_allreduce
from hpctrain.comm.timing import call_times

UNITS = {"K": 1 << 10, "M": 1 << 20}


def parse_size(text: str) -> int:
    return int(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else int(text)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="4K,64K,1M,8M,64M")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    if comm.Get_rank() == 0:
        print(f"ranks {comm.Get_size()}, float32, median of {args.repeats} calls, interleaved\n")
        print("| size | MPI Allreduce (us) | native = Allreduce + NaN pass (us) | native / MPI |")
        print("|---|---|---|---|")
    for text in args.sizes.split(","):
        buf = np.ones(parse_size(text) // 4, dtype=np.float32)
        native_allreduce(comm, buf)  # compile the pass, warm the buffers
        times = {"mpi": [], "native": []}
        for _ in range(args.repeats):  # alternate, so that drifts in the machine hit both
            for name, fn in (("mpi", mpi_allreduce), ("native", native_allreduce)):
                times[name].append(call_times(comm, lambda fn=fn, buf=buf: fn(comm, buf), 1)[0])
        mpi, native = (float(np.median(times[k])) * 1e6 for k in ("mpi", "native"))
        if comm.Get_rank() == 0:
            print(f"| {text} | {mpi:.1f} | {native:.1f} | {native / mpi:.3f} |")


if __name__ == "__main__":
    main()
