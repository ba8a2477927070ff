"""Point-to-point that checks every message is as long as the receiver expected.

The agreement (agreement.py) checks lengths collectively only for a new (length, dtype): a
rank that later switches alone to another agreed length is invisible without a collective per
call. Where the ranks' data meet, it is not: a message shorter than the receive buffer would
leave stale values in the sum, a longer one is an MPI truncation error. Either way this rank
says `rank R: allreduce buffer lengths differ across ranks ...` and aborts the job (exit 2):
never a wrong sum, never a rank left waiting. The check is one Get_count per message.
"""

import os

from ..errors import EXIT_BAD_INPUT, InputError
from ..failures import abort_on_failure

_MPI = None  # mpi4py.MPI, loaded by the first message: importing this module starts no MPI


def _mpi():
    global _MPI
    if _MPI is None:
        from mpi4py import MPI

        _MPI = MPI
    return _MPI


def new_status():
    """A status for one allreduce call's receives (one per call: threads may reduce at once)."""
    return _mpi().Status()


def sendrecv(comm, send, dest: int, recv, source: int, tag: int, status) -> None:
    """comm.Sendrecv(send -> dest, recv <- source); abort the job if recv was not filled."""
    _exactly(comm, comm.Sendrecv, (send, dest, tag, recv, source, tag, status), recv, source,
             status)


def recv(comm, buf, source: int, tag: int, status) -> None:
    """comm.Recv(buf <- source); abort the job if buf was not filled exactly."""
    _exactly(comm, comm.Recv, (buf, source, tag, status), buf, source, status)


def _exactly(comm, call, args, buf, source: int, status) -> None:
    """call(*args), which receives buf from source: a longer message (MPI's truncation
    error) or a shorter one (its status) is a length mismatch."""
    try:
        call(*args)
    except _mpi().Exception as err:
        if err.Get_error_class() != _MPI.ERR_TRUNCATE:
            raise
        length_mismatch(comm, source, buf.nbytes, None)
    if status.Get_count() != buf.nbytes:
        length_mismatch(comm, source, buf.nbytes, status.Get_count())


def world_rank(comm, rank: int) -> int:
    """`rank` of comm as a rank of COMM_WORLD (node leaders have ranks of their own)."""
    MPI = _mpi()
    return MPI.Group.Translate_ranks(comm.Get_group(), [rank], MPI.COMM_WORLD.Get_group())[0]


def length_mismatch(comm, source: int, expected: int, got: int | None) -> None:
    """Abort the job: this rank's buffer and `source`'s differ in length."""
    size = "more" if got is None else str(got)
    abort_alone(comm, InputError(
        f"allreduce buffer lengths differ across ranks: a message from rank "
        f"{world_rank(comm, source)} held {size} bytes where this rank's buffer needs "
        f"{expected} (a rank passed another length than the others)"))


def abort_alone(comm, err: InputError) -> None:
    """Print `rank R: message` and abort the job (exit 2): the others may be waiting in a
    collective that only this rank knows to be wrong."""
    with abort_on_failure(comm):  # size 1: raises; else prints `rank R: ...` and aborts
        raise err
    # MPICH's MPI_Abort may return before its process manager kills us: never go on.
    os._exit(EXIT_BAD_INPUT)
