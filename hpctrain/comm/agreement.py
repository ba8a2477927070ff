"""Agreeing that an allreduce is safe to start, without a collective on the hot path.

An allreduce with a bad buffer on one rank must not leave the other ranks waiting. A buffer's
local properties (a NumPy array, float32/float64, native byte order, C-contiguous, writable)
are checked on every call: they are a few flag reads. Whether all ranks agree (same length,
same dtype, nobody failed locally) needs one collective, and we pay it only on the FIRST call
for a given (communicator, length, dtype): one Allgather of three integers per rank. The
agreed (length, dtype) pairs are cached on the communicator (an MPI attribute, freed with it),
so a training loop that reduces the same gradient buffer every step runs no extra collective.

Once a communicator has agreed keys, other ranks may already be inside an algorithm, so:
- a rank whose buffer is bad locally (e.g. read-only) cannot warn them without a collective:
  it prints `rank R: message` and aborts the job with MPI Abort (exit 2), the project's rule
  for failures while ranks are in lockstep;
- a rank that passes a new length or dtype while the others repeat a validated one cannot be
  seen here without a collective per call (it would wait in the agreement while they wait
  in the algorithm); one that switches alone to another AGREED length is seen where the data
  meet: ring and doubling check every message's length (exact.py), shm every rank's stamp
  in its window, and the job aborts (exit 2) rather than sum rows of different lengths.
  HPCTRAIN_ALLREDUCE_CHECK=always runs the agreement on every call, a debug mode that
  catches all of this with a clear message on every rank, at the price of one small
  Allgather per call; it is read once per communicator, when its first agreement makes the
  state.

Every algorithm also runs on a private duplicate of the caller's communicator, made during
the first agreement, so its point-to-point messages can never match the caller's own.
`checked(algorithm)` puts an algorithm behind this agreement: what the registry hands out.

Importing this module starts nothing: MPI and the attribute key are first touched by the
first agreement.
"""

import functools

import numpy as np

from .. import settings
from ..errors import InputError
from ..failures import collective_check
from .exact import abort_alone

CHECK_VAR = "HPCTRAIN_ALLREDUCE_CHECK"
SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64))

# Local problems travel as small integers, so one integer Allgather tells every rank
# which rank failed and why, and every rank builds the same message.
OK, NOT_ARRAY, BAD_DTYPE, BYTE_ORDER, NOT_CONTIGUOUS, READ_ONLY = range(6)
PROBLEMS = {
    NOT_ARRAY: "allreduce buffer is not a NumPy array",
    BAD_DTYPE: "allreduce buffer has dtype {dtype}; only float32 and float64 are summed",
    BYTE_ORDER: "allreduce buffer has non-native byte order",
    NOT_CONTIGUOUS: "allreduce buffer is not C-contiguous (pass a contiguous array or a copy)",
    READ_ONLY: "allreduce buffer is read-only (the sum is written in place)",
}


def local_problem(buf) -> int:
    """The first thing wrong with this rank's buffer, as a code (OK if nothing)."""
    if not isinstance(buf, np.ndarray):
        return NOT_ARRAY
    if buf.dtype not in SUPPORTED:
        return BYTE_ORDER if buf.dtype.newbyteorder("=") in SUPPORTED else BAD_DTYPE
    if not buf.flags.c_contiguous:
        return NOT_CONTIGUOUS
    if not buf.flags.writeable:
        return READ_ONLY
    return OK


def dtype_name(code: int) -> str:
    return np.dtype(chr(code)).name if code > 0 else "?"


def describe(problem: int, dtype_code: int) -> str:
    return PROBLEMS[problem].format(dtype=dtype_name(dtype_code))


def checked(algorithm):
    """The algorithm behind the collective buffer check, run on a private communicator."""

    @functools.wraps(algorithm)
    def allreduce(comm, buf) -> None:
        private, flat = agree(comm, buf)
        algorithm(private, flat)

    return allreduce


class _State:
    """What one communicator remembers: its private duplicate, the agreed keys and whether
    every call agrees again (HPCTRAIN_ALLREDUCE_CHECK=always)."""

    __slots__ = ("private", "agreed", "always")

    def __init__(self, private, always: bool):
        self.private = private
        self.agreed = set()
        self.always = always


def _free_state(comm, keyval, state):
    from mpi4py import MPI  # loaded already: this runs when MPI frees a communicator

    # The predefined communicators lose their attributes only inside MPI_Finalize, where
    # Open MPI 4.1 aborts on MPI_Comm_free ("called after MPI_FINALIZE"): the process is
    # ending, so only a user's communicator, freed by the user, frees its duplicate.
    if not MPI.Is_finalized() and comm != MPI.COMM_WORLD and comm != MPI.COMM_SELF:
        state.private.Free()


_KEYVAL = None  # the MPI attribute key of the state, made by the first agreement
# The last communicator seen and its state: an identity test is cheaper than Get_attr, and
# holding the object means its id cannot be reused by another communicator.
_last = (None, None)


def _keyval():
    global _KEYVAL
    if _KEYVAL is None:
        from mpi4py import MPI  # on first use, so that importing the package starts no MPI

        _KEYVAL = MPI.Comm.Create_keyval(delete_fn=_free_state)
    return _KEYVAL


def _state(comm) -> _State | None:
    global _last
    last = _last  # one read: another thread may replace the pair between two reads
    if comm is last[0]:
        return last[1]
    state = comm.Get_attr(_keyval())
    if state is not None:
        _last = (comm, state)
    return state


def agree(comm, buf):
    """Check buf on every rank; return (private communicator, flat view of buf).

    Raises InputError on every rank (collectively: rank 0 reports it) when any rank's
    buffer is bad or the ranks disagree on length or dtype.
    """
    state = _state(comm)
    if state is not None and not state.always and _key(buf) in state.agreed:
        flags = buf.flags  # the hot path: a set lookup and two flag reads
        if flags.c_contiguous and flags.writeable:
            return state.private, _flat(buf)
    problem = local_problem(buf)
    if state is None or state.always:
        # First call on this communicator (every rank is here) or debug mode: agree.
        return _agree_collectively(comm, buf, problem, state)
    if problem != OK:
        # Other ranks may already be inside the algorithm on a validated key, and only a
        # collective could tell them: abort the job rather than leave them waiting.
        _abort_alone(comm, problem, buf)
    return _agree_collectively(comm, buf, problem, state)  # a new length or dtype


def _key(buf):
    """What the agreement is cached under: (length, dtype); None for a non-array."""
    return (buf.size, buf.dtype) if isinstance(buf, np.ndarray) else None


def _flat(buf):
    return buf if buf.ndim == 1 else buf.reshape(-1)


def _abort_alone(comm, problem: int, buf) -> None:
    dtype_code = ord(buf.dtype.char) if isinstance(buf, np.ndarray) else 0
    abort_alone(comm, InputError(describe(problem, dtype_code)))


def _agree_collectively(comm, buf, problem: int, state: _State | None):
    if state is None:  # every rank is here: a bad setting fails on all of them at once
        always = collective_check(comm, settings.get, CHECK_VAR) == "always"
    size = comm.Get_size()
    mine = np.array(_record(buf, problem), dtype=np.int64)
    table = np.empty((size, 3), dtype=np.int64)
    comm.Allgather(mine, table)
    error = _disagreement(table, size)
    if error is not None:
        error.collective = True
        raise error
    if state is None:
        state = _State(comm.Dup(), always)
        comm.Set_attr(_keyval(), state)
    state.agreed.add(_key(buf))
    return state.private, _flat(buf)


def _record(buf, problem: int) -> tuple[int, int, int]:
    """(length, dtype code, problem) of this rank's buffer, as integers."""
    if not isinstance(buf, np.ndarray):
        return (-1, 0, problem)
    return (buf.size, ord(buf.dtype.char), problem)


def _disagreement(table, size: int) -> InputError | None:
    """The error every rank raises, built from the same table on every rank; None if fine."""
    for rank, (_, dtype_code, problem) in enumerate(table):
        if problem != OK:
            return InputError(describe(int(problem), int(dtype_code)),
                              rank=rank if size > 1 else None)
    lengths, dtypes = table[:, 0], table[:, 1]
    if (dtypes != dtypes[0]).any():
        other = int(np.argmax(dtypes != dtypes[0]))
        return InputError(
            f"allreduce buffer dtypes differ across ranks: rank 0 has "
            f"{dtype_name(int(dtypes[0]))}, rank {other} has {dtype_name(int(dtypes[other]))}")
    if (lengths != lengths[0]).any():
        other = int(np.argmax(lengths != lengths[0]))
        return InputError(
            f"allreduce buffer lengths differ across ranks: rank 0 has {lengths[0]} "
            f"elements, rank {other} has {lengths[other]}")
    return None
