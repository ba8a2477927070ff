"""Process-wide settings that must be fixed before NumPy's BLAS or Numba start.

One thread per MPI rank is the HPC default: ranks already fill the cores, and a BLAS or
Numba thread pool per rank would oversubscribe them. The thread counts and the Numba cache
directory are read only when those libraries load, so `configure` runs first thing in every
command (and every benchmark script), before any heavy import.
"""

import os

# Every thread-pool size a BLAS, OpenMP or Numba build may read.
THREAD_VARS = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def cache_dir(*parts: str) -> str:
    """hpctrain's per-user cache ($XDG_CACHE_HOME or ~/.cache, then hpctrain/...): works
    when the package itself is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hpctrain", *parts)


def set_threads(threads: int, overwrite: bool = True) -> None:
    """Set every thread-pool variable to `threads` (or only those unset)."""
    for var in THREAD_VARS:
        if overwrite:
            os.environ[var] = str(threads)
        else:
            os.environ.setdefault(var, str(threads))


def configure(threads: int | None = None) -> None:
    """Set thread counts (explicit `threads` wins, else keep the user's, else 1) and the
    Numba cache directory."""
    set_threads(1 if threads is None else threads, overwrite=threads is not None)
    os.environ.setdefault("NUMBA_CACHE_DIR", cache_dir("numba"))
