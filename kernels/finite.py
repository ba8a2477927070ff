"""The finiteness check of the training hot path: is every value of a buffer a number?"""

import math

from numba import njit


@njit(cache=True, nogil=True)
def all_finite(a):
    """True when no element is NaN or Inf (one pass, no temporary boolean array)."""
    for i in range(a.size):
        if not math.isfinite(a[i]):
            return False
    return True
