"""Worker: every named allreduce on every size class and dtype, on this many ranks.

Run as `mpiexec -n P python comm_allreduce.py SEED [NAMES]` (NAMES: comma-separated
algorithms, default every registered one). Every case is `hpctrain.comm.verify.check`: fresh
random inputs per rank (seeded by SEED, rank and case), compared with numpy.sum in float64 of
all inputs and checked for identical bits on every rank. Cases: the grid of sizes and dtypes,
a 2-D buffer, and with several ranks a call between a posted wildcard receive and its send
and the grid on halves of the world; NaNs of different payload bits per rank (identical bits
on every rank still). Rank 0 prints `ok CASES NAMES` (CASES counted on rank
0) or the failures, and every rank exits with the same status, so a wrong sum never leaves a
rank behind.
"""

import sys

import numpy as np
from mpi4py import MPI

from hpctrain.comm import get_allreduce, names, verify


def sizes_for(p: int) -> list[int]:
    return sorted({0, 1, max(p - 1, 0), p + 1, 1001, 100_003})


class Cases:
    """Counts the cases run and keeps rank 0's failure messages."""

    def __init__(self, comm, seed):
        self.comm, self.seed = comm, seed
        self.count, self.failures = 0, []

    def run(self, name, n, dtype, label, shape=None):
        self.count += 1
        problem = verify.check(self.comm, get_allreduce(name), n, dtype, self.seed,
                               self.count, shape)
        if problem is not None and self.comm.Get_rank() == 0:  # the same on every rank
            where = f"{name} p={self.comm.Get_size()} n={n} {np.dtype(dtype).name} shape={shape}"
            self.failures.append(f"{label}: {where}: {problem}")


def run_grid(cases, names, sizes, label):
    for n in sizes:
        for dtype in (np.float32, np.float64):
            for name in names:
                cases.run(name, n, dtype, label)


def run_two_dimensional(cases, names):
    """A C-contiguous 2-D buffer is summed as its flat memory."""
    for name in names:
        cases.run(name, 3 * 7, np.float32, "2-D", shape=(3, 7))


def nan_payloads(rank: int, n: int, dtype) -> np.ndarray:
    """Numbers, with NaNs whose payload bits name the rank: at the same places on every rank,
    and at places where only some ranks have one (plus +Inf and -Inf, whose sum is NaN)."""
    buf = np.arange(n, dtype=dtype)
    bits = buf.view(np.uint32 if buf.dtype == np.float32 else np.uint64)
    quiet = np.float32("nan") if buf.dtype == np.float32 else np.float64("nan")
    nan = np.array([quiet], dtype=dtype).view(bits.dtype)[0] | (rank + 1)
    bits[0::7] = nan
    bits[rank::11] = nan
    buf[3::13] = np.inf if rank % 2 else -np.inf
    return buf


def run_nan_payloads(cases, names):
    """NaNs of different payloads on different ranks still leave identical bits everywhere."""
    comm = cases.comm
    for name in names:
        for n in (5, 1001, 100_003):
            for dtype in (np.float32, np.float64):
                cases.count += 1
                buf = nan_payloads(comm.Get_rank(), n, dtype)
                get_allreduce(name)(comm, buf)
                problem = verify.uneven_bits(comm, buf)
                if problem is not None and comm.Get_rank() == 0:
                    cases.failures.append(f"NaN payloads: {name} p={comm.Get_size()} n={n} "
                                          f"{np.dtype(dtype).name}: {problem}")


def run_beside_user_messages(cases, names):
    """An allreduce between a posted wildcard receive and its send does not steal it."""
    comm = cases.comm
    rank, p = comm.Get_rank(), comm.Get_size()
    note = np.zeros(1, dtype=np.int64)
    request = comm.Irecv(note, source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG)
    for name in names:
        cases.run(name, 257, np.float64, "beside user messages")
    comm.Send(np.array([1000 + rank], dtype=np.int64), (rank + 1) % p, tag=5)
    request.Wait()
    if note[0] != 1000 + (rank - 1) % p:
        cases.failures.append(f"rank {rank}: user message corrupted: {note[0]}")


def main():
    seed = int(sys.argv[1])
    chosen = sys.argv[2].split(",") if len(sys.argv) > 2 else names()
    world = MPI.COMM_WORLD
    cases = Cases(world, seed)
    run_grid(cases, chosen, sizes_for(world.Get_size()), "world")
    run_two_dimensional(cases, chosen)
    run_nan_payloads(cases, chosen)
    if world.Get_size() > 1:
        run_beside_user_messages(cases, chosen)
        # A second communicator, with its own cache: halves of the world.
        half = world.Split(world.Get_rank() % 2, world.Get_rank())
        on_half = Cases(half, seed + 1)
        run_grid(on_half, chosen, [0, 1, half.Get_size() + 1, 4099], "half")
        cases.count += on_half.count
        cases.failures += on_half.failures if half.Get_rank() == 0 else []
        half.Free()
    failures = world.gather(cases.failures, root=0)
    status = 0
    if world.Get_rank() == 0:
        flat = [f for per_rank in failures for f in per_rank]
        print("\n".join(flat) if flat else f"ok {cases.count} {','.join(chosen)}", flush=True)
        status = 1 if flat else 0
    sys.exit(world.bcast(status, root=0))


if __name__ == "__main__":
    main()
