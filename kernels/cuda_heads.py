"""The loss head on the GPU for the layer-by-layer path: one thread per sample computes its
loss and dL/dz (kernels/cuda_math.py), and each block adds its totals into three float32
slots at the end of the gradient buffer with one atomic each:

    stats[LOSS]         sum of per-sample losses
    stats[CORRECT]      correct predictions
    stats[BAD_LABELS]   impossible labels (the engine turns them into an InputError)
    stats[BAD_GRADS]    non-finite gradient entries (kernels/cuda_epilogue.py
                        `count_nonfinite`; the head leaves it alone)

Keeping the totals in the gradient buffer means one device-to-host copy brings back the
gradient and the numbers the training loop logs. Counts stay exact in float32 up to 2^24
per step, far above any local batch.

`add_block_totals` serves the fused kernel (kernels/cuda_fused.py) too. Numba's simulator
in numba-cuda >= 0.30.4 (setup.cfg's minimum) keeps its fake `cuda` swapped into a device
function's module while any thread is inside, so device functions shared across modules
work there; a simulator that swaps it back on each return breaks them (other threads meet
the real `numba.cuda`, which has no `atomic`).
"""

import numpy as np

from .cuda_launch import PreparedLaunch
from .cuda_math import head_sample
from .cuda_shim import cuda, kernel_options, threads_per_block

LOSS, CORRECT, BAD_LABELS, BAD_GRADS = 0, 1, 2, 3
HEAD_STATS = 3             # the slots a head adds to
STATS = 4                  # slots after the gradient
HEAD_THREADS = 128         # threads per block; a power of two (the block reduction halves)
MAX_THREADS = 256          # the most threads any kernel here reduces over

ZERO = np.float32(0.0)


@cuda.jit(device=True)
def add_block_totals(stats, at, partial, loss, correct, bad_labels):
    """stats[at + LOSS, CORRECT, BAD_LABELS] += the block's sums of those three.

    Every thread of the block must call it (it synchronises); partial is a shared
    (HEAD_STATS, MAX_THREADS) array; the block size must be a power of two."""
    tid = cuda.threadIdx.x
    partial[LOSS, tid] = loss
    partial[CORRECT, tid] = correct
    partial[BAD_LABELS, tid] = bad_labels
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if tid < half:
            for c in range(HEAD_STATS):
                partial[c, tid] += partial[c, tid + half]
        cuda.syncthreads()
        half //= 2
    if tid == 0:
        for c in range(HEAD_STATS):
            cuda.atomic.add(stats, at + c, partial[c, 0])


@cuda.jit(**kernel_options())
def head_loss_grad(logits, labels, dZ, rows, outputs, stats, at, task):
    """Per sample r < rows: dZ[r*outputs:...] = dL/dz; the block totals go to stats[at:]."""
    partial = cuda.shared.array((HEAD_STATS, MAX_THREADS), np.float32)
    r = cuda.grid(1)
    loss, correct, bad_labels = ZERO, ZERO, ZERO
    if r < rows:
        loss, correct, bad_labels = head_sample(logits, r * outputs, dZ, r * outputs,
                                                outputs, labels[r], task)
    add_block_totals(stats, at, partial, loss, correct, bad_labels)


def prepare_head(stream, logits, labels, dZ, rows, outputs, stats, at, task):
    """logits and dZ flat (rows * outputs); labels float32 (rows,). A PreparedLaunch."""
    threads = threads_per_block(HEAD_THREADS)
    blocks = (rows + threads - 1) // threads
    return PreparedLaunch(head_loss_grad, blocks, threads, stream,
                          (logits, labels, dZ, rows, outputs, stats, at, task))

