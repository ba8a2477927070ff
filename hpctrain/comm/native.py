"""The baseline: the MPI library's own Allreduce, summing in place."""

from mpi4py import MPI


def native_allreduce(comm, buf) -> None:
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
