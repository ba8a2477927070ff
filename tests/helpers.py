"""Run hpctrain the way users do: as a subprocess, plainly or under a real mpiexec."""

import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mpiexec() -> str:
    """The mpiexec beside this Python (a venv's pip MPICH) first, else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    path = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if path is None:
        raise RuntimeError("mpiexec not found: install the 'mpich' extra or a site MPI")
    return path


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


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert success, showing the process's output when it failed."""
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc
