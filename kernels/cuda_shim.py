"""The one door to numba.cuda: every CUDA module imports `cuda` from here, never directly.

The kernels need numba-cuda (NVIDIA's CUDA target for Numba, the `cuda` extra), not the
deprecated target built into Numba itself: they use its `alignment` argument of shared
arrays, and its simulator accepts that argument (as None) where the built-in one does not.
`hpctrain.cuda_engine.cuda_available` says which one is installed.

numba-cuda 0.30 (the out-of-tree CUDA target that replaces Numba's built-in one when it is
installed) still calls `np.row_stack` while its CUDA target loads. NumPy 2.5 removed that
alias (it was deprecated in 2.0 for `np.vstack`, which it always was), so with NumPy >= 2.5
`from numba import cuda` fails with AttributeError. Putting the alias back before the
first import makes it work; the guard leaves any NumPy that still has it
alone. Remove this once numba-cuda no longer calls np.row_stack.

Setting NUMBA_ENABLE_CUDASIM=1 before this import gives Numba's CUDA simulator (kernels run
as Python threads on the CPU): that is how the tests exercise these kernels without a GPU.
"""

import numpy as np

if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

from numba import cuda  # noqa: E402  (must follow the shim above)

__all__ = ["cuda", "kernel_options", "simulated", "threads_per_block"]

SIMULATOR_THREADS = 32


def simulated() -> bool:
    """True when kernels run in Numba's CUDA simulator rather than on a GPU."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def kernel_options(registers: int = 0) -> dict:
    """Keyword arguments for `cuda.jit` of a kernel: cached on disk (compiling the kernels
    takes seconds, loading them milliseconds), with an optional register cap. The simulator
    takes neither option."""
    if simulated():
        return {}
    options = {"cache": True}
    if registers:
        options["max_registers"] = registers
    return options


def threads_per_block(wanted: int) -> int:
    """`wanted` on a GPU; at most SIMULATOR_THREADS in the simulator, where every thread is
    a Python thread. The kernels work for any power-of-two block size."""
    return min(wanted, SIMULATOR_THREADS) if simulated() else wanted
