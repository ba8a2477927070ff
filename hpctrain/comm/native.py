"""The baseline: the MPI library's own Allreduce, summing in place, then one NaN for all.

MPI may leave NaNs of different payload bits on different ranks (same_nans.py says why);
every algorithm here promises identical bits on every rank, so the result's NaNs are made
canonical: one integer pass over the buffer, rewriting only if a NaN or Inf is there.
`mpi_allreduce` is the call alone, the baseline that benchmarks compare against.
"""

from .same_nans import canonical_nans


def mpi_allreduce(comm, buf) -> None:
    from mpi4py import MPI  # MPI starts when an allreduce runs, never on import

    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)


def native_allreduce(comm, buf) -> None:
    mpi_allreduce(comm, buf)
    if comm.Get_size() > 1:
        canonical_nans(buf)
