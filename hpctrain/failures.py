"""How ranks agree on failure, so that no rank is ever left waiting in a collective.

Two rules:
- bad input found by any rank before training: every rank learns it through one collective,
  rank 0 reports it, every rank exits with status 2;
- any failure on one rank while the ranks are in lockstep: that rank prints `rank R: message`
  and aborts the whole job with MPI Abort, so no rank waits in a collective forever.
"""

import os
import sys
import time
import traceback
from contextlib import contextmanager

from .errors import EXIT_BAD_INPUT, EXIT_FAILED, InputError

ABORT_GRACE_S = 0.5


def collective_check(comm, fn, *args, **kwargs):
    """Run fn on every rank; if it raises InputError on any rank, raise it on every rank.

    The error raised everywhere is the one of the lowest failing rank, tagged with that rank,
    and marked `collective` so that only rank 0 prints it.
    """
    result, failure = None, None
    try:
        result = fn(*args, **kwargs)
    except InputError as err:
        failure = (err.message, err.path)
    # Small and rare (once per command), so the pickling allgather is fine here.
    failures = comm.allgather(failure)
    for rank, failed in enumerate(failures):
        if failed is not None:
            err = InputError(failed[0], failed[1], rank if comm.Get_size() > 1 else None)
            err.collective = True
            raise err
    return result


@contextmanager
def abort_on_failure(comm):
    """Turn an exception on one rank into `rank R: message` and an MPI Abort of everyone.

    With one rank there is nobody to free, and the exception propagates as usual.
    """
    try:
        yield
    except (Exception, KeyboardInterrupt) as err:
        if comm.Get_size() == 1 or getattr(err, "collective", False):
            raise
        code = EXIT_BAD_INPUT if isinstance(err, InputError) else EXIT_FAILED
        message = err.message if isinstance(err, InputError) else f"{type(err).__name__}: {err}"
        if isinstance(err, InputError) and err.path:
            message = f"{err.path}: {message}"
        # The one line first, then the traceback: MPI_Abort can end the launcher's output
        # forwarding before it has read everything, and that line is what must get out.
        sys.stderr.write(f"rank {comm.Get_rank()}: {message}\n")
        sys.stderr.flush()
        if code == EXIT_FAILED:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
        time.sleep(ABORT_GRACE_S)  # let the launcher forward what this rank printed
        comm.Abort(code)
        # MPICH's MPI_Abort can return before the launcher kills this process; never let
        # the rank carry on as if nothing happened.
        os._exit(code)
