"""Compile each kernel once per node, the compiles split across the node's ranks.

A cold start compiles every kernel a run needs (docs/OBSERVABILITY.md, "Cold start"). Numba's
cache is a directory the node's ranks share, so one rank's compile serves them all, and a
kernel that calls a cached one loads it instead of compiling it again. So, on a cold node of
P ranks, in waves with a barrier after each:

1. the parts: pieces of the large kernels (the step's forward, backward and head), node rank
   i taking parts i, i + P, ...;
2. the jobs, spread the same way: each kernel the run calls, now compiling only its own body;
3. every rank runs the jobs it has not run, which load from the cache.

The node then waits for its slowest part plus its slowest job, not for all of them, and no
kernel compiles twice on it. With a warm cache (the node's first rank asks `cached()`), or
one rank on the node, every rank just runs the jobs: nothing is gained by the parts there.

A job (or part) is any call that runs a kernel on throwaway inputs of the real run's types,
or compiles it for them (the types pick the specialization, so the first real step finds it).
"""

from mpi4py import MPI


def compile_on_node(comm, jobs, parts=(), cached=lambda: False) -> None:
    """Run every job on every rank of `comm`; cold, the parts first, and the first runs of
    both spread over each node's ranks."""
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    here, size = node.Get_rank(), node.Get_size()
    warm = node.bcast(cached() is True if here == 0 else None, root=0)  # one answer per node
    if warm or size == 1:
        run_all(jobs)
    else:
        for wave in (parts, jobs):
            run_all(wave[here::size])
            node.Barrier()
        run_all(job for i, job in enumerate(jobs) if i % size != here)
    node.Free()


def run_all(jobs) -> None:
    for job in jobs:
        job()
