"""The CUDA half of the kernels (kernels/cuda_*.py, hpctrain/cuda_engine.py, cuda_device.py).

The checks themselves are in tests/cuda_sim/cases.py; they run in a subprocess because
Numba reads NUMBA_ENABLE_CUDASIM once, when it is first imported, and the simulator must
not leak into the other tests of this process. Under the simulator every test runs here
and in CI; on a machine with a GPU they run once more on the GPU, with larger shapes.
"""

import importlib.util
import os
import re
import subprocess
import sys
import types

import pytest
from helpers import REPO, check, child_env

CASES = [os.path.join(REPO, "tests", "cuda_sim", name)
         for name in ("cases.py", "products_cases.py")]


def run_cases(**env) -> subprocess.CompletedProcess:
    environment = child_env(**env)
    if "NUMBA_ENABLE_CUDASIM" not in env:
        environment.pop("NUMBA_ENABLE_CUDASIM", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *CASES]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=environment,
                          cwd=REPO)


def assert_all_passed(proc: subprocess.CompletedProcess) -> None:
    check(proc)
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, \
        proc.stdout


NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None


@pytest.mark.skipif(not NUMBA_CUDA, reason="needs numba-cuda (the 'cuda' extra)")
def test_cuda_kernels_in_the_simulator():
    assert_all_passed(run_cases(NUMBA_ENABLE_CUDASIM="1"))


def gpu_present() -> bool:
    from hpctrain.kernels.cuda_shim import simulated

    from hpctrain.cuda_engine import cuda_available

    return cuda_available()[0] and not simulated()


@pytest.mark.skipif(not gpu_present(), reason="no CUDA GPU here: the simulator run covers it")
def test_cuda_kernels_on_the_gpu():
    assert_all_passed(run_cases())


def test_asking_for_cuda_where_it_cannot_be_used_is_an_input_error(monkeypatch):
    """Whatever this machine has: the engine refuses with cuda_available's reason, before
    it touches a GPU."""
    from hpctrain import cuda_engine
    from hpctrain.errors import InputError
    from hpctrain.model import MLP

    def no_gpu_wanted(device_id=None):
        raise AssertionError("a GPU was selected although CUDA cannot be used")

    monkeypatch.setattr(cuda_engine, "cuda_available", lambda: (False, "no CUDA GPU found"))
    monkeypatch.setattr(cuda_engine, "select_gpu", no_gpu_wanted)
    with pytest.raises(InputError, match="CUDA was asked for but cannot be used: no CUDA GPU "
                                         "found"):
        cuda_engine.CudaEngine(MLP(4, (3,), "relu", "binary", 2), "adam", lr=0.01)


class BrokenCuda:
    """A numba.cuda whose driver fails as a broken installation does."""

    implementation = "NVIDIA"

    @staticmethod
    def is_available():
        raise OSError("libcuda.so: cannot open shared object file")


@pytest.mark.parametrize("shim, reason", [
    (None, r"numba.cuda cannot be loaded \(ModuleNotFoundError"),
    (types.SimpleNamespace(cuda=types.SimpleNamespace(implementation="built-in"),
                           simulated=lambda: False), "need the numba-cuda package"),
    (types.SimpleNamespace(cuda=BrokenCuda, simulated=lambda: False),
     r"cannot use the GPU \(OSError: libcuda.so"),
], ids=["numba-missing", "numba-built-in-target", "broken-driver"])
def test_cuda_available_says_why_not_instead_of_raising(monkeypatch, shim, reason):
    from hpctrain.cuda_device import cuda_available

    monkeypatch.setitem(sys.modules, "hpctrain.kernels.cuda_shim", shim)
    ok, why = cuda_available()
    assert ok is False
    assert re.search(reason, why), why


def test_local_rank_comes_from_the_launcher(monkeypatch):
    from hpctrain.cuda_device import local_rank

    for var in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK",
                "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_LOCALID", "3")
    assert local_rank() == 3
    monkeypatch.setenv("MPI_LOCALRANKID", "5")      # the MPI launcher's word comes first
    assert local_rank() == 5
