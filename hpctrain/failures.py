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

from .errors import EXIT_BAD_INPUT, EXIT_FAILED, InputError, OutputError, RunFailed

ABORT_GRACE_S = 0.5


def collective_check(comm, fn, *args, **kwargs):
    """Run fn on every rank; if it raises on any rank, raise on every rank.

    An InputError (bad input: exit 2) is raised everywhere as the lowest failing rank's,
    tagged with that rank; any other exception (a bug, an OS failure: exit 1) prints its
    traceback on the rank where it happened and becomes a RunFailed everywhere. Both are
    marked `collective`, so only rank 0 prints the one line, and no rank is left waiting in
    a collective that a failed rank never enters.
    """
    result, failure = None, None
    try:
        result = fn(*args, **kwargs)
    except InputError as err:
        failure = ("input", err.message, err.path)
    except OutputError as err:  # disk full, read-only: the line says all, no traceback
        failure = ("failed", str(err), None)
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        failure = ("failed", f"{type(err).__name__}: {err}", None)
    # Small and rare (once per command), so the pickling allgather is fine here.
    failures = comm.allgather(failure)
    for rank, failed in enumerate(failures):
        if failed is not None:
            kind, message, path = failed
            where = rank if comm.Get_size() > 1 else None
            if kind == "input":
                err = InputError(message, path, where)
            else:
                err = RunFailed(message if where is None else f"rank {where}: {message}")
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
        if isinstance(err, OutputError):
            message = str(err)
        # The one line first, then the traceback: MPI_Abort can end the launcher's output
        # forwarding before it has read everything, and that line is what must get out.
        sys.stderr.write(f"rank {comm.Get_rank()}: {message}\n")
        sys.stderr.flush()
        if code == EXIT_FAILED and not isinstance(err, OutputError):
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
        time.sleep(ABORT_GRACE_S)  # let the launcher forward what this rank printed
        comm.Abort(code)
        # MPICH's MPI_Abort can return before the launcher kills this process; never let
        # the rank carry on as if nothing happened.
        os._exit(code)
