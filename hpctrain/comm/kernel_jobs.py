"""The allreduces' own kernels as compile jobs (hpctrain.node_compile), for a buffer's dtype.

Each job runs one kernel on a few throwaway values of the types the algorithms pass it
(contiguous 1-D slices of the buffer, the window's 2-D rows), so that auto's first measurement
and the first step's reduction find them compiled: split over a node's ranks they cost one
kernel's compile time instead of all of them on every rank.
"""

import numpy as np

from .local_add import add_into, sum_into
from .same_nans import canonical_nans
from .shm import sum_rows


def kernel_jobs(dtype) -> list:
    """Jobs compiling (or loading) the local add kernels and the NaN pass for `dtype`."""
    def values(*shape):
        return np.zeros(shape, dtype=dtype)

    return [lambda: add_into(values(2)[:1], values(1)),
            lambda: sum_into(values(1), values(1), values(1)),
            lambda: sum_rows(values(2, 2), values(2), 0, 2),
            lambda: canonical_nans(values(2))]
