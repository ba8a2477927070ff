"""Where a benchmark result came from: code, libraries and machine, recorded with every result.

A figure without its provenance cannot be compared later: was it this commit, this MPI, this
CPU? `collect` gathers it once per benchmark; `bench scaling`, `bench report` and `bench
allreduce` write it beside their numbers (scaling.json, the allreduce CSV and header), and
`--reference` picks the machine's reference values by `hostname`.
"""

import os
import platform
import socket
import subprocess
from importlib import metadata

# The libraries whose versions change the numbers; reported as "name": "version".
LIBRARIES = ("numpy", "numba", "mpi4py")
FIELDS = ("git_commit", "mpi_library", *LIBRARIES, "cpu_model", "hostname")
GIT_TIMEOUT_S = 5.0


def collect(mpi_library: str | None = None) -> dict:
    """The provenance of a result measured now, on this machine.

    `mpi_library` is the MPI that ran the measurement (the runs' summary.json, or the
    benchmark's own `world.mpi_library()`); None when it is unknown.
    """
    facts = {"git_commit": git_commit(), "mpi_library": mpi_library}
    facts.update({name: library_version(name) for name in LIBRARIES})
    facts["cpu_model"] = cpu_model()
    facts["hostname"] = socket.gethostname()
    return facts


def git_commit() -> str | None:
    """The checkout's HEAD, '+dirty' when it has local changes; None outside a git checkout
    (an installed wheel) or without git."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = _git(here, "rev-parse", "HEAD")
        if head is None:
            return None
        dirty = _git(here, "status", "--porcelain", "--untracked-files=no")
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def _git(where, *args) -> str | None:
    proc = subprocess.run(["git", "-C", where, *args], capture_output=True, text=True,
                          timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL)
    return proc.stdout.strip() if proc.returncode == 0 else None


def library_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's marketing name (Linux's /proc/cpuinfo), else what the platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe(facts: dict) -> str:
    """One line for a text header: `commit abc123, MPICH 4.2, numpy 2.1, ... on host (CPU)`."""
    commit = facts.get("git_commit") or "no git commit"
    commit = commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")
    libs = ", ".join(f"{name} {facts.get(name) or '?'}" for name in LIBRARIES)
    return (f"commit {commit}, {facts.get('mpi_library') or 'unknown MPI'}, {libs}, "
            f"on {facts.get('hostname')} ({facts.get('cpu_model')})")
