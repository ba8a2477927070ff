"""Worker: every registered allreduce on every size class and dtype, on this many ranks.

Run as `mpiexec -n P python comm_allreduce.py SEED [NAMES]` (NAMES: comma-separated
algorithms, default every registered one). Each rank sums fresh random inputs
(seeded by SEED, rank and case); rank 0 gathers every rank's input and result and checks
the result against numpy.sum in float64 of all inputs (to the float rounding bound) and
that every rank holds the same bits. Rank 0 prints `ok CASES` or the failures, and every
rank exits with the same status, so a wrong sum never leaves a rank behind.
"""

import sys

import numpy as np
from mpi4py import MPI

from hpctrain.comm import ALGORITHMS


def sizes_for(p: int) -> list[int]:
    return sorted({0, 1, max(p - 1, 0), p + 1, 1001, 100_003})


def run_case(comm, name, n, dtype, seed, case, shape=None):
    """One allreduce; on rank 0 a failure message or None, elsewhere None."""
    rank, p = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng([seed, rank, case])
    data = rng.standard_normal(n).astype(dtype)
    buf = data.copy().reshape(shape or (n,))
    ALGORITHMS[name](comm, buf)
    inputs, results = comm.gather(data, root=0), comm.gather(buf.tobytes(), root=0)
    if rank != 0:
        return None
    where = f"{name} p={p} n={n} {np.dtype(dtype).name} shape={shape}"
    if any(r != results[0] for r in results):
        return f"{where}: ranks hold different bits"
    stacked = np.array(inputs, dtype=np.float64).reshape(p, n)
    reference, bound = stacked.sum(axis=0), p * np.finfo(dtype).eps * np.abs(stacked).sum(axis=0)
    got = np.frombuffer(results[0], dtype=dtype).astype(np.float64)
    error = np.abs(got - reference)
    if got.shape != reference.shape or not np.all(error <= bound):
        return f"{where}: max error {error.max():.3g} over bound {bound.max():.3g}"
    return None


def run_grid(comm, names, seed, sizes, label):
    failures, case = [], 0
    for n in sizes:
        for dtype in (np.float32, np.float64):
            for name in names:
                case += 1
                failure = run_case(comm, name, n, dtype, seed, case)
                if failure:
                    failures.append(f"{label}: {failure}")
    return failures, case


def run_two_dimensional(comm, names, seed):
    """A C-contiguous 2-D buffer is summed as its flat memory."""
    failures = []
    for i, name in enumerate(names):
        failure = run_case(comm, name, 3 * 7, np.float32, seed, 10_000 + i, shape=(3, 7))
        if failure:
            failures.append(f"2-D: {failure}")
    return failures


def run_beside_user_messages(comm, names, seed):
    """An allreduce between a posted wildcard receive and its send does not steal it."""
    rank, p = comm.Get_rank(), comm.Get_size()
    note = np.zeros(1, dtype=np.int64)
    request = comm.Irecv(note, source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG)
    failures = []
    for i, name in enumerate(names):
        failure = run_case(comm, name, 257, np.float64, seed, 20_000 + i)
        if failure:
            failures.append(f"beside user messages: {failure}")
    comm.Send(np.array([1000 + rank], dtype=np.int64), (rank + 1) % p, tag=5)
    request.Wait()
    if note[0] != 1000 + (rank - 1) % p:
        failures.append(f"rank {rank}: user message corrupted: {note[0]}")
    return failures


def main():
    seed = int(sys.argv[1])
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else sorted(ALGORITHMS)
    world = MPI.COMM_WORLD
    failures, cases = run_grid(world, names, seed, sizes_for(world.Get_size()), "world")
    failures += run_two_dimensional(world, names, seed)
    if world.Get_size() > 1:
        failures += run_beside_user_messages(world, names, seed)
        # A second communicator, with its own cache: halves of the world.
        half = world.Split(world.Get_rank() % 2, world.Get_rank())
        more, count = run_grid(half, names, seed + 1, [0, 1, half.Get_size() + 1, 4099], "half")
        failures += more
        cases += count
        half.Free()
    failures = world.gather(failures, root=0)
    if world.Get_rank() == 0:
        flat = [f for per_rank in failures for f in per_rank]
        print("\n".join(flat) if flat else f"ok {cases}", flush=True)
        status = 1 if flat else 0
    else:
        status = 0
    sys.exit(world.bcast(status, root=0))


if __name__ == "__main__":
    main()
