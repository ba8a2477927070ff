"""One NaN for all: make every rank hold the same bits where a sum is NaN.

MPI's own Allreduce adds the ranks' values in an order of its choosing, and where two NaNs
meet, x86 keeps the payload of the first operand: at 8 ranks MPICH leaves NaNs with different
bits on different ranks (reproduced in tests/mpi/comm_allreduce.py). The hand-written
algorithms compute each element once and copy it, so they need none of this.

`canonical_nans(buf)` reads the buffer once as integers (an OR of "exponent all ones" tests,
which vectorises without fastmath) and only where it finds a NaN or Inf rewrites each NaN as
the one quiet NaN of its dtype: Infs and finite values keep their bits.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _canonical(bits, exponent, mantissa, quiet) -> None:
    found = 0
    for i in range(bits.size):  # the common case: one integer pass, vectorised
        found |= (bits[i] & exponent) == exponent
    if found:
        for i in range(bits.size):
            if (bits[i] & exponent) == exponent and (bits[i] & mantissa) != 0:
                bits[i] = quiet


@njit(cache=True, nogil=True)
def canonical_nans(buf) -> None:
    """Every NaN in `buf` (1-D, float32 or float64) becomes its dtype's one quiet NaN."""
    if buf.itemsize == 4:
        _canonical(buf.view(np.uint32), np.uint32(0x7F800000), np.uint32(0x007FFFFF),
                   np.uint32(0x7FC00000))
    else:
        _canonical(buf.view(np.uint64), np.uint64(0x7FF0000000000000),
                   np.uint64(0x000FFFFFFFFFFFFF), np.uint64(0x7FF8000000000000))
