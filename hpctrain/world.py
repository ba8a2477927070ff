"""The MPI world, started only by the commands that need it, and facts about it.

`import hpctrain` and its light modules never import mpi4py.MPI (which initialises MPI):
`world()` does, when a command first needs the communicator.
"""

import os
import sys

# Set by the common launchers for each process before MPI starts: this process's rank.
LAUNCHER_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")


def world():
    """MPI.COMM_WORLD (initialising MPI on first use)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def current_rank() -> int:
    """This process's rank if MPI is running; else what the launcher said; else 0.

    Never starts MPI: an error found before MPI starts is then still printed by rank 0 only.
    """
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        return mpi.COMM_WORLD.Get_rank()
    for var in LAUNCHER_RANK_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def mpi_library() -> str:
    """The MPI library's one-line name (Open MPI's string ends in a NUL byte: dropped)."""
    from mpi4py import MPI

    text = MPI.Get_library_version().replace("\x00", "").strip()
    return " ".join(text.splitlines()[0].split()) if text else "unknown MPI"


def hosts(comm) -> list[str]:
    """The sorted set of host names of the ranks of `comm` (collective)."""
    from mpi4py import MPI

    return sorted(set(comm.allgather(MPI.Get_processor_name())))


def print_stderr(message: str) -> None:
    """The `warn(message)` of one process: the line on stderr, at once."""
    print(message, file=sys.stderr, flush=True)


def root_warning(comm):
    """A `warn(message)` that prints to stderr on rank 0 and does nothing elsewhere, so a
    note every rank reaches is printed once."""
    if comm.Get_rank() != 0:
        return lambda message: None
    return print_stderr
