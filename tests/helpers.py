"""Run hpctrain the way users do: as a subprocess, plainly or under a real mpiexec.

Which MPI the tests use is decided in one place, the package's own: the mpiexec beside the
Python that runs pytest (the virtual environment's MPI, the one its mpi4py was installed
with), unless HPCTRAIN_MPIEXEC names another. CI runs the multi-rank tests (marker `mpi`,
see conftest.py) once from .venv (pip MPICH) and once from .venv-ompi (pip Open MPI).
"""

import functools
import os
import subprocess
import sys

from hpctrain.launcher import find_mpiexec, without_launcher_reports

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What Open MPI needs on a CI machine or container, set by conftest.py when the tests' MPI is
# Open MPI (a cluster's own settings need none of it): running as root, more ranks than
# cores (Open MPI 5's PRRTE and Open MPI 4's own name for it), and UCX off, whose components
# find no network device here and print "OSC UCX component priority set inside component
# query failed" on every rank that opens a window (shm).
OPEN_MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_pml": "^ucx", "OMPI_MCA_osc": "^ucx", "OMPI_MCA_btl": "^uct,openib",
}


def mpiexec() -> str:
    """The mpiexec the package itself would start (hpctrain.launcher's order)."""
    return find_mpiexec()


@functools.cache
def is_open_mpi() -> bool:
    """Whether the tests' mpiexec is Open MPI's (`mpiexec (Open MPI) 5.0.11`)."""
    try:
        proc = subprocess.run([mpiexec(), "--version"], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Open MPI" in proc.stdout or "OpenRTE" in proc.stdout


def child_env(**extra) -> dict:
    """The environment for a child: this Python's bin first on PATH (finds hpctrain, mpiexec)."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args, timeout=300, env=None, cwd=None) -> subprocess.CompletedProcess:
    """`hpctrain ARGS` as one process."""
    cmd = [sys.executable, "-m", "hpctrain", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env or child_env(), cwd=cwd)


def run_mpi(nranks, args, timeout=300, env=None, cwd=None,
            module="hpctrain") -> subprocess.CompletedProcess:
    """`mpiexec -n P python -m MODULE ARGS` (oversubscribing the cores is allowed in tests)."""
    cmd = [mpiexec(), "-n", str(nranks), sys.executable, "-m", module, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env or child_env(), cwd=cwd)


def run_mpi_script(nranks, script, args=(), timeout=300, env=None) -> subprocess.CompletedProcess:
    """`mpiexec -n P python SCRIPT ARGS`, for tests that drive the library directly."""
    cmd = [mpiexec(), "-n", str(nranks), sys.executable, str(script), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env or child_env())


def own_lines(stderr: str) -> list:
    """stderr's lines without the launcher's own reports (hpctrain.launcher)."""
    return without_launcher_reports(stderr.splitlines())


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert success, showing the process's output when it failed."""
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def fails(args, *fragments, timeout=300):
    """`hpctrain ARGS` exits 2 with exactly one error line holding every fragment."""
    proc = run_cli(args, timeout=timeout)
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hpctrain: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
