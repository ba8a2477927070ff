"""Every allreduce by name: the algorithm functions themselves, each behind the agreement.

An algorithm is a plain function `fn(comm, flat)` in its own module, summing a flat,
contiguous float32/float64 NumPy buffer in place over comm (right also for p = 1 and n = 0).
`checked(fn)` puts it behind the collective buffer check of `agreement`, so every entry gives
the same safety. Adding an algorithm is one import and one line in CANDIDATES (which `auto`
then measures too) or in ALGORITHMS. Importing this module loads Numba (the local adds) and
the algorithm modules; MPI itself starts with the first call.
"""

from .agreement import checked
from .auto import make_auto
from .doubling import doubling_allreduce
from .native import mpi_allreduce, native_allreduce
from .ring import ring_allreduce
from .shm import shm_allreduce

# What `auto` chooses among, unchecked: auto runs on the agreement's private communicator.
CANDIDATES = {
    "native": native_allreduce,
    "ring": ring_allreduce,
    "doubling": doubling_allreduce,
    "shm": shm_allreduce,
}

ALGORITHMS = {
    "native": checked(native_allreduce),
    "ring": checked(ring_allreduce),
    "doubling": checked(doubling_allreduce),
    "shm": checked(shm_allreduce),
    "auto": checked(make_auto(CANDIDATES)),
}

# What benchmarks compare against: MPI's Allreduce as MPI gives it, without native's NaN pass
# (its cost is measured apart: benchmarks/native_nan_cost.py).
BASELINE = checked(mpi_allreduce)

# Earlier names that users still type: name -> registered name.
ALIASES = {"tree": "doubling"}
