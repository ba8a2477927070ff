"""The allreduces' own kernels as compile jobs (hpctrain.node_compile).

Each job runs one kernel on a few throwaway values of the types the algorithms pass it
(contiguous 1-D slices of the buffer, the window's 2-D rows), so that `auto`'s first
measurement and the first step's reduction find them compiled: split over a node's ranks they
cost one kernel's compile time instead of all of them on every rank.
"""

import numpy as np

from .local_add import add_into, sum_into
from .same_nans import canonical_nans
from .shm import sum_rows


def _values(dtype, *shape):
    return np.zeros(shape, dtype=dtype)


# reduction (an algorithm, or the zero-copy window) -> its kernels' jobs, for a dtype
KERNELS = {
    "native": (lambda t: canonical_nans(_values(t, 2)),),
    "ring": (lambda t: add_into(_values(t, 2)[:1], _values(t, 1)),),
    "doubling": (lambda t: sum_into(_values(t, 1), _values(t, 1), _values(t, 1)),),
    "shm": (lambda t: sum_rows(_values(t, 2, 2), _values(t, 2), 0, 2),),
}
KERNELS["shm-window"] = KERNELS["shm"]


def kernel_jobs(comm, dtype, reductions) -> list:
    """Jobs compiling (or loading) the kernels of these reductions over `comm` for `dtype`
    (names without kernels of their own, such as auto, which compiles its candidates', add
    none; so does one rank, where every algorithm returns before it reduces)."""
    if comm.Get_size() == 1:
        return []
    jobs = []
    for name in sorted(set(reductions)):
        for kernel in KERNELS.get(name, ()):
            jobs.append(lambda kernel=kernel: kernel(dtype))
    return jobs
