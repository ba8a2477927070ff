"""The elementwise work around the vendor BLAS's products (kernels/cuda_blas.py): one launch
per layer and direction, each one pass over the layer's output.

    bias_activation   forward:  Z = act(A W + b), in place over the product A W
    times_derivative  backward: dA = (dZ W^T) * act'(A), in place over the product dZ W^T
    to_bf16           a bfloat16 copy of a float32 buffer (weights, inputs, the top delta)
    gather_rows       a batch from rows held on the GPU: X[idx], labels[idx], into the flat
                      batch layout of kernels/cuda_staging.py
    count_nonfinite   how many gradient entries are NaN or infinite (one GPU, no allreduce:
                      the verdict on the gradient without bringing it to the host)

With `--precision bf16` the products read bfloat16 operands (fp32 sums); the first two kernels
then also write that copy of what they produce, so it costs no extra pass. NumPy has no
bfloat16, so a copy is a uint16 array of the float32's upper half, rounded to nearest even:
the kernel reads its float32 result back through a uint32 view of the same memory (`bits`)
to get at the bits, which works alike on the GPU and in the simulator. A kernel that makes no
copy is handed a one-element `low` and `with_low` = 0.
"""

import math

import numpy as np

from .cuda_math import activate, derivative_from_output
from .cuda_shim import cuda, kernel_options, threads_per_block

ELEMENT_THREADS = 256
ROUND = np.uint32(0x7FFF)     # bf16 round-to-nearest-even: add this and the kept lowest bit
ONE_BIT = np.uint32(1)
SHIFT = np.uint32(16)


@cuda.jit(device=True)
def bf16_bits(bits):
    """The bfloat16 nearest to the float32 with these bits (ties to even), as its 16 bits."""
    return (bits + ROUND + ((bits >> SHIFT) & ONE_BIT)) >> SHIFT


@cuda.jit(**kernel_options())
def bias_activation(Z, bits, bias, width, total, code, low, with_low):
    """Z (flat, rows * width) = act(Z + bias[column]); low = its bf16 copy when with_low."""
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        Z[i] = activate(Z[i] + bias[i % width], code)
        if with_low:
            low[i] = bf16_bits(bits[i])


@cuda.jit(**kernel_options())
def times_derivative(dA, bits, A, total, code, low, with_low):
    """dA (flat) *= act'(A), the derivative taken from the activation's output A."""
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        dA[i] = dA[i] * derivative_from_output(A[i], code)
        if with_low:
            low[i] = bf16_bits(bits[i])


@cuda.jit(**kernel_options())
def to_bf16(bits, low, total):
    """low[i] = the bf16 of the float32 whose bits are bits[i]."""
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        low[i] = bf16_bits(bits[i])


@cuda.jit(**kernel_options())
def gather_rows(X, labels, idx, batch, rows, features):
    """batch[:rows * features] = X[idx] row by row, then batch[rows * features:] = labels[idx]."""
    total = rows * features
    for i in range(cuda.grid(1), total + rows, cuda.gridsize(1)):
        if i < total:
            r = i // features
            batch[i] = X[idx[r], i - r * features]
        else:
            batch[i] = labels[idx[i - total]]


@cuda.jit(**kernel_options())
def count_nonfinite(values, n, stats, at):
    """stats[at] += the count of non-finite values[:n] (one atomic per thread that saw one)."""
    seen = 0
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        if not math.isfinite(values[i]):
            seen += 1
    if seen:
        cuda.atomic.add(stats, at, np.float32(seen))


def element_config(total: int, sm_count: int, stream):
    """Grid-stride launches: enough blocks to keep every multiprocessor streaming."""
    threads = threads_per_block(ELEMENT_THREADS)
    return max(1, min(-(-total // threads), 16 * max(1, sm_count))), threads, stream


def bits_of(array):
    """The uint32 view of a float32 device array: the same memory, read as bits."""
    return array.view(np.uint32)
