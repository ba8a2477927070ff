"""A small network's whole forward, head and backward pass in ONE kernel launch.

For a small model (32-64-1 on 256 rows, say) the arithmetic takes microseconds and each
launch from Python costs tens of microseconds (docs/GPU.md), so the layer-by-layer path
(two or three launches per layer) is all overhead. Here each block takes a tile of
samples and keeps everything about them in shared memory: their inputs, every layer's
outputs, and two ping-pong buffers of deltas. Weights are read from global memory (a
small model stays in L1/L2). The block runs the layers forward, the head, and the layers
backward; its share of the gradient SUM goes into the flat gradient buffer with one
atomic add per parameter, and its loss totals into the STATS slots behind the gradient
(kernels/cuda_heads.py).

The gradient buffer must be zero when the kernel starts; the optimizer kernel leaves it so.

Shared-memory layout for a tile of `rows` samples (widths = features, hidden..., outputs):
    [inputs | layer 0 output | layer 1 output | ... | logits | deltas A | deltas B]
each block `rows * width` floats, deltas `rows * max(widths[1:])` each.

The batch arrives as ONE flat float32 array (rows * features inputs, then the labels as
float32), the same buffer that was copied in: fewer arguments make a cheaper launch.
"""

import numpy as np

from .cuda_heads import HEAD_STATS, MAX_THREADS, add_block_totals
from .cuda_launch import PreparedLaunch
from .cuda_math import activate, derivative_from_output, head_sample
from .cuda_shim import cuda, kernel_options

SHARED_FLOATS = 11 * 1024      # 44 KiB: under the 48 KiB a block may declare statically,
                               # with room for the reduction buffer
FUSED_THREADS = 256
MAX_FUSED_PARAMS = 1 << 16     # beyond this the per-block gradient loops and atomics cost
                               # more than the launches they save
MIN_TILE = 4
MIN_AUTO_TILE = 8

ZERO = np.float32(0.0)


def floats_per_sample(widths) -> int:
    return int(sum(widths)) + 2 * int(max(widths[1:]))


def max_tile(widths) -> int:
    """The most samples one block can hold, or 0 if the network is too big to fuse."""
    n_params = sum(i * o + o for i, o in zip(widths[:-1], widths[1:], strict=True))
    if n_params > MAX_FUSED_PARAMS:
        return 0
    tile = SHARED_FLOATS // floats_per_sample(widths)
    return tile if tile >= MIN_TILE else 0


def pick_tile(widths, rows: int, sm_count: int, wanted: int | None = None) -> int:
    """Samples per block: at least MIN_AUTO_TILE, more when the batch would otherwise need
    several blocks per multiprocessor (each block adds the whole gradient with atomics):
    fewer samples a block measured faster for the small model (docs/GPU.md). 0: don't
    fuse."""
    top = max_tile(widths)
    if top == 0:
        return 0
    if wanted:
        return max(1, min(int(wanted), top))
    return max(1, min(top, max(MIN_AUTO_TILE, -(-rows // max(1, sm_count)))))


@cuda.jit(**kernel_options())
def fused_loss_grad(params, grad, batch, rows_total, widths, act, task, tile):
    """grad[:n_params] += SUM of per-sample gradients over this block's tile of the batch;
    grad[n_params:n_params + HEAD_STATS] += (loss, correct, bad labels) totals."""
    buf = cuda.shared.array(SHARED_FLOATS, np.float32)
    partial = cuda.shared.array((HEAD_STATS, MAX_THREADS), np.float32)
    tid = cuda.threadIdx.x
    step = cuda.blockDim.x
    layers = widths.shape[0] - 1
    features = widths[0]
    first = cuda.blockIdx.x * tile
    rows = min(tile, rows_total - first)
    labels_at = rows_total * features
    for idx in range(tid, rows * features, step):
        buf[idx] = batch[first * features + idx]
    cuda.syncthreads()

    # Forward: layer l reads its input at `inp` and writes its output right behind it.
    inp = 0
    start = 0                      # where W_l begins in the flat parameters
    for l in range(layers):
        i = widths[l]
        o = widths[l + 1]
        out = inp + rows * i
        bias = start + i * o
        for idx in range(tid, rows * o, step):
            s = idx // o
            j = idx - s * o
            z = params[bias + j]
            row = inp + s * i
            for k in range(i):
                z += buf[row + k] * params[start + k * o + j]
            buf[out + idx] = z if l == layers - 1 else activate(z, act)
        cuda.syncthreads()
        inp = out
        start = bias + o

    # Head: the logits are at `inp`; dL/dz goes to the first delta buffer.
    outputs = widths[layers]
    widest = 0
    for l in range(1, layers + 1):
        widest = max(widest, widths[l])
    delta = inp + rows * outputs
    other = delta + rows * widest
    loss, correct, bad_labels = ZERO, ZERO, ZERO
    for s in range(tid, rows, step):
        one_loss, one_correct, one_bad = head_sample(
            buf, inp + s * outputs, buf, delta + s * outputs, outputs,
            batch[labels_at + first + s], task)
        loss += one_loss
        correct += one_correct
        bad_labels += one_bad
    add_block_totals(grad, start, partial, loss, correct, bad_labels)   # synchronises

    # Backward: from the logits down; `out` is layer l's output, `inp` its input.
    out = inp
    for l in range(layers - 1, -1, -1):
        i = widths[l]
        o = widths[l + 1]
        start -= i * o + o
        inp = out - rows * i
        for idx in range(tid, i * o + o, step):
            g = ZERO
            if idx < i * o:
                k = idx // o
                j = idx - k * o
                for s in range(rows):
                    g += buf[inp + s * i + k] * buf[delta + s * o + j]
            else:
                j = idx - i * o
                for s in range(rows):
                    g += buf[delta + s * o + j]
            cuda.atomic.add(grad, start + idx, g)
        if l > 0:
            for idx in range(tid, rows * i, step):
                s = idx // i
                k = idx - s * i
                g = ZERO
                for j in range(o):
                    g += buf[delta + s * o + j] * params[start + k * o + j]
                buf[other + idx] = g * derivative_from_output(buf[inp + idx], act)
        cuda.syncthreads()
        delta, other = other, delta
        out = inp


def prepare_fused(stream, params, grad, batch, rows, widths_d, act, task, tile,
                  threads=FUSED_THREADS):
    """One launch over `rows` samples (a PreparedLaunch); widths_d: int64 device widths."""
    blocks = -(-rows // tile)
    return PreparedLaunch(fused_loss_grad, blocks, threads, stream,
                          (params, grad, batch, rows, widths_d, act, task, tile))
