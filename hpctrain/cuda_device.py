"""Finding and choosing the GPU: whether CUDA kernels can run here, which GPU this process
takes (local rank mod GPU count) and how many multiprocessors it has.

numba.cuda is imported inside the functions: it is optional (the `cuda` extra) and slow to
load, and `cuda_available` must answer, never raise, where it is missing or broken.
"""

import os
import sys

# Set by the common launchers for each process: the rank among those on the same node.
_LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK",
                    "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")
_SIMULATOR_SM_COUNT = 4


def cuda_available() -> tuple[bool, str]:
    """(True, what) if CUDA kernels can run here, else (False, why not), never raising."""
    try:
        from .kernels.cuda_shim import cuda, simulated
    except Exception as err:  # numba missing, or numba-cuda failing to load its target
        return False, f"numba.cuda cannot be loaded ({type(err).__name__}: {err})"
    if getattr(cuda, "implementation", "") != "NVIDIA":
        return False, ("the kernels need the numba-cuda package (pip install 'hpctrain[cuda]'); "
                       "only Numba's deprecated built-in CUDA target is installed")
    if simulated():
        return True, "Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    try:
        if not cuda.is_available():
            return False, "no CUDA driver or GPU found by numba.cuda"
        count = len(cuda.gpus)
    except Exception as err:  # a broken driver or toolkit reports itself in many ways
        return False, f"numba.cuda cannot use the GPU ({type(err).__name__}: {err})"
    if count == 0:
        return False, "no CUDA GPU found"
    return True, f"{count} CUDA GPU(s)"


def local_rank() -> int:
    """This process's rank among the processes on its node.

    From the launcher's environment when it says; otherwise from an MPI shared-memory split
    if MPI is running (a collective: every rank must be here); otherwise 0.
    """
    for var in _LOCAL_RANK_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        node = mpi.COMM_WORLD.Split_type(mpi.COMM_TYPE_SHARED)
        rank = node.Get_rank()
        node.Free()
        return rank
    return 0


def select_gpu(device_id=None) -> int:
    """Make GPU (device_id, else local rank) mod GPU count current; returns its index."""
    from .kernels.cuda_shim import cuda, simulated

    if simulated():
        return 0
    index = (local_rank() if device_id is None else int(device_id)) % len(cuda.gpus)
    cuda.select_device(index)
    return index


def sm_count() -> int:
    """Multiprocessors of the current GPU (a fixed small number in the simulator)."""
    from .kernels.cuda_shim import cuda, simulated

    if simulated():
        return _SIMULATOR_SM_COUNT
    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
