"""Process-wide settings that must be fixed before NumPy's BLAS or Numba start.

One thread per MPI rank is the HPC default: ranks already fill the cores, and a BLAS or
Numba thread pool per rank would oversubscribe them. Where the job says otherwise (SLURM's
--cpus-per-task, or NUMBA_NUM_THREADS / OMP_NUM_THREADS set by the user), `train` follows
it: `resolve_threads`. The thread counts and the Numba cache directory are read only when
those libraries load, so `configure` runs first thing in every command (and every benchmark
script), before any heavy import.
"""

import os

from .errors import InputError

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


# Where `train` takes its threads per rank from when --threads is not given, in this order.
THREAD_SOURCES = ("SLURM_CPUS_PER_TASK", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")


def resolve_threads(given: int | None = None) -> int:
    """The threads per rank: `given` (--threads) if not None; else SLURM_CPUS_PER_TASK (the
    job's --cpus-per-task); else NUMBA_NUM_THREADS, else OMP_NUM_THREADS, when set; else 1.
    A variable that is not a whole number >= 1 is an InputError naming it."""
    if given is not None:
        return given
    from .config import MAX_THREADS

    for var in THREAD_SOURCES:
        text = os.environ.get(var, "").strip()
        if not text:
            continue
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_THREADS:
            raise InputError(f"{var}={text!r}: expected a whole number of threads in "
                             f"[1, {MAX_THREADS}] (or give --threads N)")
        return int(text)
    return 1


def check_oversubscription(comm, threads: int, warn) -> None:
    """Collective: warn (rank 0, one line) when some node runs more threads than it has cores
    for its ranks: ranks on the node x threads > the cores in the union of their affinity
    masks (all of the node's allowed cores when unbound; each rank's own when bound).
    Only for threads > 1: more single-threaded ranks than cores is the launch's choice
    (the tests oversubscribe on purpose), not something --threads can mend."""
    if threads <= 1:
        return
    from mpi4py import MPI

    try:
        cores = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = list(range(os.cpu_count() or 1))
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        masks = node.allgather(cores)
    finally:
        node.Free()
    mine = (len(masks), len(set().union(*map(set, masks))), MPI.Get_processor_name())
    nodes = comm.gather(mine, root=0)
    if comm.Get_rank() != 0:
        return
    for ranks, available, host in nodes:
        if ranks * threads > available:
            warn(f"hpctrain: warning: {ranks} rank{'s' if ranks > 1 else ''} x {threads} "
                 f"threads = {ranks * threads} on {host}, which has {available} core"
                 f"{'s' if available > 1 else ''} for them: the threads oversubscribe the "
                 f"cores and run slower; give fewer --threads (or --cpus-per-task) or ranks "
                 f"per node")
            return


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
