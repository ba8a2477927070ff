"""The two kinds of failure hpctrain distinguishes, and their exit codes.

InputError: the user gave us something we cannot use (a file, a flag, a checkpoint).
It is reported as one line naming the file and, under MPI, the rank; exit status 2.
Anything else that escapes while running is a failure: exit status 1 (or MPI Abort).
"""

import os

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_STOPPED = 3   # stopped by a signal after checkpointing; --resume continues


class InputError(Exception):
    """Bad input or usage: a one-line message, optionally naming a file and a rank."""

    def __init__(self, message: str, path=None, rank: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.rank = rank

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        who = f"rank {self.rank}: " if self.rank is not None else ""
        return f"{who}{where}{self.message}"


class RunFailed(Exception):
    """A failure every rank detected together (e.g. a non-finite loss): exit status 1.

    Because all ranks raise it at the same point, nobody needs MPI Abort; rank 0 reports it.
    """

    collective = True


class Stopped(Exception):
    """Every rank stopped at the same step on a signal, after rank 0's checkpoint: exit 3."""

    collective = True


class OutputError(Exception):
    """An output file could not be written (disk full, read-only, permissions): exit 1 with
    one line naming the file and the OS error; nothing half-written is left."""

    def __init__(self, path, err: OSError):
        # The OS's words for the errno: libraries (h5py) put pages of detail in the message.
        why = os.strerror(err.errno) if err.errno else str(err).splitlines()[0]
        super().__init__(f"{path}: cannot write: {why}")
        self.path = str(path)
