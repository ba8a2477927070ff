"""Finding the mpiexec that starts a job, in one order for every caller.

$HPCTRAIN_MPIEXEC first (the user said so), then the mpiexec beside this Python (a virtual
environment's pip MPICH, also when the environment is not activated: the MPI that mpi4py was
installed with), then the first one on PATH (a site's MPI module).
"""

import os
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
