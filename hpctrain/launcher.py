"""Finding the mpiexec that starts a job, in one order for every caller.

$HPCTRAIN_MPIEXEC first (the user said so), then the mpiexec beside this Python (a virtual
environment's pip MPICH, also when the environment is not activated: the MPI that mpi4py was
installed with), then the first one on PATH (a site's MPI module).
"""

import os
import re
import shutil
import sys

from . import settings
from .errors import InputError


def find_mpiexec() -> str:
    chosen = settings.get("HPCTRAIN_MPIEXEC")
    if chosen:
        return chosen
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("mpiexec")
    if found is None:
        raise InputError("mpiexec not found: install an MPI (pip install 'hpctrain[mpich]') "
                         "or load your site's MPI module")
    return found


_RULE = re.compile(r"^\s*-{40,}\s*$")
_PMIX_NOISE = re.compile(r"^\[[^\]]+\] PMIX ERROR: ")
_LAUNCHERS = ("prterun", "mpirun", "mpiexec", "PRRTE")


def without_launcher_reports(lines) -> list:
    """Output lines without the launcher's own reports: Open MPI's prterun adds a box
    ("prterun detected that one or more processes exited with non-zero status ...", between
    two rules of dashes) whenever a rank exits non-zero, and PMIx error lines when a rank is
    gone; MPICH adds nothing. Neither can be switched off, and neither says what went wrong."""
    lines, out, i = list(lines), [], 0
    while i < len(lines):
        if _RULE.match(lines[i]):
            end = next((j for j in range(i + 1, len(lines)) if _RULE.match(lines[j])), None)
            if end is not None and any(w in line for line in lines[i:end] for w in _LAUNCHERS):
                i = end + 1
                continue
        if not _PMIX_NOISE.match(lines[i]):
            out.append(lines[i])
        i += 1
    return out
