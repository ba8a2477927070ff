"""The local adds of the hand-written algorithms: a received chunk into the buffer, elementwise.

Numba kernels rather than `np.add(..., out=...)`: on small 1-D slices the call costs about half
the ufunc's (it is paid 2(p-1) times per ring allreduce) and it is no slower on large ones,
where both are bound by memory (docs/PERFORMANCE.md has the numbers). `nogil` lets a caller
overlap an add with work in another thread; `cache` avoids recompiling in every rank. No
fastmath: each element is one IEEE addition, so results do not depend on SIMD width.
"""

from numba import njit


@njit(cache=True, nogil=True)
def add_into(target, incoming):
    """target = target + incoming, elementwise, in place."""
    for i in range(target.size):
        target[i] += incoming[i]


@njit(cache=True, nogil=True)
def sum_into(target, first, second):
    """target = first + second, elementwise, in this operand order (target may be either)."""
    for i in range(target.size):
        target[i] = first[i] + second[i]
