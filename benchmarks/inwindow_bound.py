"""The bound of an allreduce whose inputs already lie in one shared window (plain mpi4py).

    mpiexec -n P python benchmarks/inwindow_bound.py [--sizes 4K,64K,1M,8M,64M] [--reps 20]

The simplest thing a node can do: every rank's row of one MPI-3 shared window holds its
input; a barrier; each rank sums its 1/P column block over all P rows with NumPy; a barrier;
the sum lies in the result row for everyone to read. No copies, no pipelining, no checks:
what `shm-window` (hpctrain/comm/shm_step.py) must come close to. busbw as nccl-tests count
it: bytes / time * 2(P-1)/P, the median over --reps calls of the slowest rank's time.
"""

from hpctrain.runtime import set_threads

set_threads(1)  # one thread per rank, before NumPy loads its BLAS

import argparse  # noqa: E402

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    unit = text[-1] if text[-1] in UNITS else ""
    return int(text[:-1] if unit else text) * UNITS[unit]


def one_size(node, nbytes: int, reps: int) -> float:
    p, r = node.Get_size(), node.Get_rank()
    n = nbytes // 4
    win = MPI.Win.Allocate_shared((p + 1) * n * 4 if r == 0 else 0, 4, comm=node)
    memory, _ = win.Shared_query(0)
    rows = np.frombuffer(memory, dtype=np.float32).reshape(p + 1, n)
    rows[r] = r + 1.0
    block = -(-n // p)
    lo, hi = min(r * block, n), min((r + 1) * block, n)
    times = []
    for _ in range(reps + 2):
        node.Barrier()
        start = MPI.Wtime()
        node.Barrier()                       # everyone's row is written
        np.sum(rows[:p, lo:hi], axis=0, out=rows[p, lo:hi])
        node.Barrier()                       # the sum is complete
        times.append(MPI.Wtime() - start)
    assert rows[p, n // 2] == p * (p + 1) / 2  # the sum is really there
    win.Free()
    slowest = np.empty(len(times))
    node.Allreduce(np.array(times), slowest, op=MPI.MAX)
    return float(np.median(slowest[2:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4K,64K,1M,8M,64M")
    parser.add_argument("--reps", type=int, default=20)
    a = parser.parse_args()
    node = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
    p = node.Get_size()
    if node.Get_rank() == 0:
        print(f"# in-window bound, {p} ranks on one node: size, time, busbw")
    for text in a.sizes.split(","):
        nbytes = parse_size(text)
        seconds = one_size(node, nbytes, a.reps)
        if node.Get_rank() == 0:
            busbw = nbytes / seconds / 1e9 * 2 * (p - 1) / p
            print(f"{nbytes:>12} B {seconds * 1e6:>10.1f} us  busbw {busbw:7.2f} GB/s",
                  flush=True)


if __name__ == "__main__":
    main()
