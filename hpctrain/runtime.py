"""Process-wide settings that must be fixed before NumPy's BLAS or Numba start.

One thread per MPI rank is the HPC default: ranks already fill the cores, and a BLAS or
Numba thread pool per rank would oversubscribe them. The thread counts and the Numba cache
directory are read only when those libraries load, so `configure` runs first thing in every
command, before any heavy import.
"""

import os

_THREAD_VARS = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def default_cache_dir() -> str:
    """A per-user cache for Numba's compiled kernels: works when the package is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hpctrain", "numba")


def configure(threads: int | None = None) -> None:
    """Set thread counts (explicit `threads` wins, else keep the user's, else 1) and the cache."""
    for var in _THREAD_VARS:
        if threads is not None:
            os.environ[var] = str(threads)
        else:
            os.environ.setdefault(var, "1")
    os.environ.setdefault("NUMBA_CACHE_DIR", default_cache_dir())
