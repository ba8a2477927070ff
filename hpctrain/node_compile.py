"""Compile each kernel once per node, the compiles split across the node's ranks.

A cold start compiles every kernel a run needs (docs/OBSERVABILITY.md, "Cold start"). Numba's
cache is a directory the node's ranks share, so one rank's compile serves them all: in the
first turn node rank i runs compile jobs i, i + P, ... (P ranks on the node) and each fills the
cache with its own; after one barrier every rank runs the jobs it has not run, which now load
from the cache. A node then compiles in the time of its slowest job, not of all of them, and no
kernel compiles twice on it. With a warm cache (the node's first rank asks `cached()`) every
rank loads everything at once, without the barrier between.

A job is any call that runs a kernel on throwaway inputs of the real run's types (the types
pick the specialization, so the first real step finds it compiled).
"""

from mpi4py import MPI


def compile_on_node(comm, jobs, cached=lambda: False) -> None:
    """Run every job on every rank of `comm`; cold, the node's first runs of each are
    spread over the node's ranks."""
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    here, size = node.Get_rank(), node.Get_size()
    warm = node.bcast(cached() is True if here == 0 else None, root=0)  # one answer per node
    mine = [job for i, job in enumerate(jobs) if warm or i % size == here]
    for job in mine:
        job()
    if not warm:
        node.Barrier()
        for job in jobs:
            if job not in mine:
                job()
    node.Free()
