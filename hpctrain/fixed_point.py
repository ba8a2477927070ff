"""Exact sums of float gradients in any order: fixed point, held in float64.

A float sum's bits depend on the order of its additions, and so on the rank count and the
allreduce algorithm. Integers do not: `round(g * 2^s)` of every micro-batch gradient g is an
integer, and while every partial sum stays below 2^53 in magnitude, float64 adds integers
EXACTLY, so ring, doubling, shm and MPI's own Allreduce all return the same bits whatever
their order. No new dtype is needed in the allreduce: it sums float64 as always.

The scale 2^s is agreed for the step without a collective of its own. With B a bound on the
exponent (every |g| < 2^B) and K micro-batches in the global batch (K <= 2^L),

    s = 53 - B - L          so that |sum| <= K * 2^(B + s) <= 2^53: no rounding, ever.

B is the last step's largest exponent plus MARGIN, and the reduced buffer carries what is
needed to check it: a histogram with one count at each rank's largest exponent (its SUM says
the global maximum) and an overflow count (a rank whose gradient outgrew 2^B). When that count
is non-zero, every rank sees it at once and the step is summed again with B the exact maximum
(the first step always is: nothing is known yet). All of this depends only on the
micro-batches, never on which rank computed them, so the scale, too, is the same for any P.

Error against the float64 sum of the same micro-batch gradients: each term is rounded once to
a multiple of 2^-s, so |fixed - float64| <= K * 2^-(s+1) = K * 2^(B+L-54) per element, about
2^(2L - 54) relative to the largest gradient: 2^-38 for K = 256, far below float32's own
2^-24. The result is then rounded once to float32 for the update.
"""

import math

import numpy as np
from numba import njit

EXP_MIN, EXP_MAX = -126, 128      # float32's exponent range, for the histogram's slots
SLOTS = EXP_MAX - EXP_MIN + 1
MARGIN = 2                        # a gradient may grow 4x in a step without a second sum


@njit(cache=True, nogil=True)
def quantize_add(acc, parts, count, scale, first) -> float:
    """acc (= if first, else +=) the sum over j < count of rint(parts[j] * scale), in one
    pass: each term is an integer (scale is a power of two), so the sum is exact in any
    order. Returns the largest |parts[j, i]| (NaNs skipped: the step's finiteness check sees
    them in the sum). Several micro-batches per pass: the float64 sum is read and written once
    for all of them, and memory traffic is what this costs."""
    top = 0.0
    for i in range(acc.size):
        total = 0.0 if first else acc[i]
        for j in range(count):
            v = np.float64(parts[j, i])
            total += np.rint(v * scale)
            if abs(v) > top:
                top = abs(v)
        acc[i] = total
    return top


@njit(cache=True, nogil=True)
def dequantize(acc, unscale, out) -> bool:
    """out = float32(acc * unscale) (exact scaling by a power of two, one rounding); returns
    whether every element is finite (one pass for both)."""
    finite = True
    for i in range(out.size):
        out[i] = acc[i] * unscale
        if not math.isfinite(out[i]):
            finite = False
    return finite


def exponent(magnitude: float) -> int:
    """The smallest e in [EXP_MIN, EXP_MAX] with magnitude < 2^e (EXP_MAX for Inf)."""
    if not math.isfinite(magnitude):
        return EXP_MAX
    if magnitude == 0.0:
        return EXP_MIN
    return min(max(math.frexp(magnitude)[1], EXP_MIN), EXP_MAX)


def scale_exponent(bound: int, micro_batches: int) -> int:
    """s for values below 2^bound, `micro_batches` of them summed: 53 - bound - L."""
    return 53 - bound - max(micro_batches - 1, 0).bit_length()


def highest_slot(histogram: np.ndarray) -> int | None:
    """The largest exponent some rank reported (None if no rank had a micro-batch)."""
    found = np.flatnonzero(histogram > 0)
    return int(found[-1]) + EXP_MIN if found.size else None
