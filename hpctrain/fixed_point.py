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
QUANTIZE_BLOCK = 2048             # elements of the sum kept in L1 while the parts stream by


@njit(cache=True, nogil=True)
def quantize_add(acc, parts, count, scale, first) -> float:
    """acc (= if first, else +=) the sum over j < count of rint(parts[j] * scale), in one
    pass over acc: each term is an integer (scale is a power of two), so the sum is exact in
    any order. Several micro-batches per pass, because memory traffic is what this costs: the
    float64 sum is read and written once for all of them. Block by block, so that the block's
    partial sums stay in L1 and every inner loop is one the compiler vectorises.

    Returns the largest |parts[j, i]|, found as the largest magnitude's bits (an integer max,
    which vectorises where a float max does not); a NaN reads as larger than Inf, so it makes
    the step's bound the largest one, and the step's finiteness check then stops the run."""
    bits = parts.view(np.uint32)
    magnitude = np.uint32(0x7FFFFFFF)
    top = np.uint32(0)
    block = np.empty(QUANTIZE_BLOCK, dtype=np.float64)
    for start in range(0, acc.size, QUANTIZE_BLOCK):
        n = min(QUANTIZE_BLOCK, acc.size - start)
        if first:
            block[:n] = 0.0
        else:
            block[:n] = acc[start:start + n]
        for j in range(count):
            row, row_bits = parts[j, start:start + n], bits[j, start:start + n]
            for i in range(n):
                block[i] += np.rint(np.float64(row[i]) * scale)
            for i in range(n):
                top = max(top, row_bits[i] & magnitude)
        acc[start:start + n] = block[:n]
    return np.array([top], dtype=np.uint32).view(np.float32)[0]


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
