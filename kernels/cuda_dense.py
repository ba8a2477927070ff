"""One dense layer on the GPU: three tiled matrix products, each with its elementwise work
fused into the same kernel so no intermediate makes an extra trip through device memory.

    forward        Z (n, o) = act(A (n, i) @ W (i, o) + b)           bias + activation fused
    weight grads   dW += A^T dZ,  db += column sums of dZ             bias grad fused
    input grads    dA (n, i) = (dZ W^T) * act'(A_prev)                derivative fused

All three share one scheme, the classic register-blocked SGEMM: a block computes a
TILE x TILE tile of the output; each k-step it stages a TILE x BK slice of each operand in
shared memory, and each thread accumulates a T x T micro-tile in registers, reading T + T
values from shared memory for T * T multiply-adds. A thread owns its rows (and columns)
in groups of 4 adjacent ones, the groups TILE / 2 apart (T = 8), so it reads each group
as one 16-byte vector (ld.shared.v4: 4 loads per 64 multiply-adds instead of 16), and
each quarter-warp's vectors cover 128 contiguous bytes: no bank conflicts. The next slice
is fetched from global memory into registers before the current one is multiplied, so
its latency hides behind the arithmetic. Operands that arrive k-fastest (A in the forward
product, W in the input gradient) are transposed on their way into shared memory, and
their rows are padded so that those stores do not conflict.

The weight gradient sums over the batch, which is long (8192) while its output can be small
(1024 x 10): it splits the batch across blocks ("split-K") and adds into dW with atomics, so
the gradient buffer must be zero before the first layer's gradients land (the optimizer
kernel leaves it zeroed).

The three are one kernel body (`product_kernel`) with compile-time parameters: each
operand's layout (k-fastest or k-major), how an output is finished (bias + activation, an
atomic add, times the derivative) and whether the batch is split. Tile shapes are
compile-time constants too, so each shape is its own set of kernels, built by
`tile_kernels` (cached per shape; Numba keys its disk cache on the closure's values too).
`DenseLauncher` picks a shape and a grid per product. (Over 300 lines on purpose: the
launcher's choices follow the kernels' shapes and split, and read best beside them.)
"""

from dataclasses import dataclass
from functools import cache

import numpy as np

from .cuda_launch import PreparedLaunch
from .cuda_math import activate, derivative_from_output
from .cuda_shim import cuda, kernel_options, simulated

ZERO = np.float32(0.0)
PAD = 4          # floats of padding per shared row: transposed stores then avoid conflicts


@dataclass(frozen=True)
class TileShape:
    tile: int     # the output tile is tile x tile
    depth: int    # BK: how much of the summed dimension one shared-memory slice holds
    micro: int    # each thread computes micro x micro outputs
    registers: int = 0   # a cap per thread (0: the compiler's choice); 128 lets two
                         # 256-thread blocks share a multiprocessor

    @property
    def lanes(self) -> int:
        """Threads along each side of the block's square thread grid."""
        return self.tile // self.micro

    @property
    def threads(self) -> int:
        return self.lanes * self.lanes


LARGE = TileShape(128, 8, 8, 128)    # the fast one, for products that fill the GPU
SMALL = TileShape(64, 16, 4)         # four times the blocks, for small batches or thin outputs
DEEP = TileShape(128, 16, 8)         # LARGE with twice the slice depth: half the barriers
TINY = TileShape(8, 4, 2)            # 16 threads, for the simulator: its threads are Python threads


# What differs between the three products besides the operands' layouts: how each output
# is finished. Arguments (out, extra, m, n, the summed product, the kernel's scalar).

@cuda.jit(device=True)
def bias_then_activation(Z, bias, m, n, total, code):
    Z[m, n] = activate(total + bias[n], code)


@cuda.jit(device=True)
def add_into(dW, db, m, n, total, chunk):
    cuda.atomic.add(dW, (m, n), total)       # other blocks add other shares of the batch


@cuda.jit(device=True)
def times_derivative(dA, A_prev, m, n, total, code):
    dA[m, n] = total * derivative_from_output(A_prev[m, n], code)


# An operand's sizes (along the output, along the summed k), by its layout.

@cuda.jit(device=True)
def sizes_k_fastest(src):
    return src.shape[0], src.shape[1]


@cuda.jit(device=True)
def sizes_k_major(src):
    return src.shape[1], src.shape[0]


class TileKernels:
    """The three products of one tile shape, compiled on first launch. Each kernel takes
    (A, B, out, extra, scalar): forward (A, W, Z, bias, code), weight_grads (A, dZ, dW,
    db, chunk), input_grads (dZ, W, dA, A_prev, code)."""

    def __init__(self, shape, forward, weight_grads, input_grads):
        self.shape = shape
        self.forward = forward
        self.weight_grads = weight_grads
        self.input_grads = input_grads


@cache
def tile_kernels(shape: TileShape) -> TileKernels:
    TILE, BK, T = shape.tile, shape.depth, shape.micro
    LANES, THREADS = shape.lanes, shape.threads
    ROW = TILE + PAD              # a shared slice is BK rows of ROW floats, k-major
    ROW_U = np.uint64(ROW)
    SLICE = BK * ROW
    ACC = T * T
    VEC = min(4, T)               # rows (columns) a thread owns side by side
    # 16-byte aligned slices let the compiler read VEC = 4 floats in one instruction
    # (ld.shared.v4); the simulator refuses any alignment argument but None.
    SHARED_ALIGN = None if simulated() else 16
    GROUP = TILE // (T // VEC)    # distance between a thread's groups of VEC
    LOADS = TILE * BK // THREADS   # elements of each operand slice a thread moves
    assert TILE == LANES * T and LANES >= T and LOADS >= 1 and LOADS * THREADS == TILE * BK
    options = kernel_options(shape.registers)

    @cuda.jit(device=True)
    def spread(i):
        """Offset of a thread's i-th row (or column) from its first: VEC together, then the
        next VEC one group further on."""
        return (i // VEC) * GROUP + i % VEC

    @cuda.jit(device=True)
    def fetch_k_fastest(src, row0, rows, k0, k_end, regs, tid):
        """regs <- this thread's share of src[row0:row0+TILE, k0:k0+BK] (rows k-fastest)."""
        for e in range(LOADS):
            idx = tid + THREADS * e
            r = row0 + idx // BK
            k = k0 + idx % BK
            regs[e] = src[r, k] if r < rows and k < k_end else ZERO

    @cuda.jit(device=True)
    def fetch_k_major(src, col0, cols, k0, k_end, regs, tid):
        """regs <- this thread's share of src[k0:k0+BK, col0:col0+TILE] (k-major rows)."""
        for e in range(LOADS):
            idx = tid + THREADS * e
            k = k0 + idx // TILE
            c = col0 + idx % TILE
            regs[e] = src[k, c] if k < k_end and c < cols else ZERO

    @cuda.jit(device=True)
    def store_transposed(regs, tile, tid):
        for e in range(LOADS):
            idx = tid + THREADS * e
            tile[(idx % BK) * ROW + idx // BK] = regs[e]

    @cuda.jit(device=True)
    def store_straight(regs, tile, tid):
        for e in range(LOADS):
            idx = tid + THREADS * e
            tile[(idx // TILE) * ROW + idx % TILE] = regs[e]

    @cuda.jit(device=True)
    def multiply_slice(As, Bs, acc, a, b, ty, tx):
        """acc += As^T Bs over one slice, for this thread's rows and columns (`spread`).

        The shared-memory offsets are unsigned on purpose: Numba adds a negative-index
        check to every signed index, and in this loop (the only hot one) that check and
        the 64-bit arithmetic around it cost more instructions than the multiply-adds.
        """
        pa = np.uint64(ty * VEC)
        pb = np.uint64(tx * VEC)
        for _ in range(BK):
            for i in range(T):
                a[i] = As[pa + np.uint64(spread(i))]
            for j in range(T):
                b[j] = Bs[pb + np.uint64(spread(j))]
            for i in range(T):
                for j in range(T):
                    acc[i * T + j] += a[i] * b[j]
            pa += ROW_U
            pb += ROW_U

    @cuda.jit(device=True)
    def clear(acc):
        for e in range(ACC):
            acc[e] = ZERO

    # An operand's layout: how its slices are fetched and stored, and its sizes.
    k_fastest = (fetch_k_fastest, store_transposed, sizes_k_fastest)
    k_major = (fetch_k_major, store_straight, sizes_k_major)

    def product_kernel(a_layout, b_layout, finish, split_batch):
        """One tiled product: out (M, N) <- finish(sum over k of A[m, k] B[k, n]), each
        operand stored k-fastest or k-major, `finish(out, extra, m, n, sum, scalar)`
        writing each output. split_batch: block z sums k in [z*scalar, (z+1)*scalar) and
        the first row of tiles also sums B's columns into extra (the bias gradient).

        Everything that differs between the products is a compile-time constant of the
        closure (Numba prunes the `if split_batch` branches before typing), so each
        product compiles to the PTX it had when the three were written out separately.
        """
        fetch_a, store_a, sizes_a = a_layout
        fetch_b, store_b, sizes_b = b_layout

        @cuda.jit(**options)
        def product(A, B, out, extra, scalar):
            As = cuda.shared.array(SLICE, np.float32, alignment=SHARED_ALIGN)
            Bs = cuda.shared.array(SLICE, np.float32, alignment=SHARED_ALIGN)
            acc = cuda.local.array(ACC, np.float32)
            a = cuda.local.array(T, np.float32)
            b = cuda.local.array(T, np.float32)
            ra = cuda.local.array(LOADS, np.float32)
            rb = cuda.local.array(LOADS, np.float32)
            tid = cuda.threadIdx.x
            tx = tid % LANES
            ty = tid // LANES
            M, K = sizes_a(A)
            N = sizes_b(B)[0]
            m0 = cuda.blockIdx.y * TILE
            n0 = cuda.blockIdx.x * TILE
            k_begin = 0
            k_end = K
            bias_sum = ZERO
            if split_batch:
                k_begin = cuda.blockIdx.z * scalar
                k_end = min(K, k_begin + scalar)
                sums_bias = cuda.blockIdx.y == 0 and tid < TILE
            clear(acc)
            fetch_a(A, m0, M, k_begin, k_end, ra, tid)
            fetch_b(B, n0, N, k_begin, k_end, rb, tid)
            for k0 in range(k_begin, k_end, BK):
                store_a(ra, As, tid)
                store_b(rb, Bs, tid)
                cuda.syncthreads()
                if k0 + BK < k_end:
                    fetch_a(A, m0, M, k0 + BK, k_end, ra, tid)
                    fetch_b(B, n0, N, k0 + BK, k_end, rb, tid)
                if split_batch:
                    if sums_bias:
                        for k in range(BK):
                            bias_sum += Bs[k * ROW + tid]
                multiply_slice(As, Bs, acc, a, b, ty, tx)
                cuda.syncthreads()
            for i in range(T):
                m = m0 + ty * VEC + spread(i)
                for j in range(T):
                    n = n0 + tx * VEC + spread(j)
                    if m < M and n < N:
                        finish(out, extra, m, n, acc[i * T + j], scalar)
            if split_batch:
                if sums_bias and n0 + tid < N:
                    cuda.atomic.add(extra, n0 + tid, bias_sum)

        return product

    return TileKernels(
        shape,
        # Z = act(A @ W + bias); A (M, K), W (K, N)
        forward=product_kernel(k_fastest, k_major, bias_then_activation, False),
        # dW += A^T dZ, db += column sums of dZ; A (K, M), dZ (K, N), K the batch
        weight_grads=product_kernel(k_major, k_major, add_into, True),
        # dA = (dZ @ W^T) * act'(A_prev); dZ (M, K), W (N, K)
        input_grads=product_kernel(k_fastest, k_fastest, times_derivative, False))


def _blocks(size: int, tile: int) -> int:
    return (size + tile - 1) // tile


class DenseLauncher:
    """Picks a tile shape per product and launches it on one stream.

    `sm_count` is the GPU's multiprocessor count: a product whose large tiles would not
    give every multiprocessor a block gets the small tiles, and the weight gradient splits
    the batch until there are about two blocks per multiprocessor. `shapes` forces one tile
    shape for every product (the tests use TINY in the simulator). `min_slices`: the
    shortest share of the batch a weight-gradient block takes, in slices of `depth` rows
    (shorter shares spend more on atomics than they gain in parallelism).
    """

    def __init__(self, stream, sm_count: int, shapes=None, min_slices: int = 16):
        self.stream = stream
        self.sm_count = max(1, int(sm_count))
        self.forced = shapes
        self.min_slices = min_slices

    def _kernels(self, rows: int, cols: int) -> TileKernels:
        if self.forced is not None:
            return tile_kernels(self.forced)
        if _blocks(rows, LARGE.tile) * _blocks(cols, LARGE.tile) >= self.sm_count:
            return tile_kernels(LARGE)
        return tile_kernels(SMALL)

    def prepare_forward(self, A, W, bias, Z, code: int) -> PreparedLaunch:
        """Z = act(A @ W + bias), ready to launch (again and again)."""
        M, N = A.shape[0], W.shape[1]
        k = self._kernels(M, N)
        t = k.shape.tile
        return PreparedLaunch(k.forward, (_blocks(N, t), _blocks(M, t)), k.shape.threads,
                              self.stream, (A, W, Z, bias, code))

    def prepare_weight_grads(self, A, dZ, dW, db) -> PreparedLaunch | None:
        """dW += A^T dZ, db += column sums of dZ; None for an empty batch."""
        batch, M = A.shape
        N = dZ.shape[1]
        if batch == 0:
            return None
        k = tile_kernels(self.forced or LARGE)
        t, depth = k.shape.tile, k.shape.depth
        tiles = _blocks(M, t) * _blocks(N, t)
        # Split the batch so every multiprocessor gets about two blocks.
        most_splits = batch // (self.min_slices * depth)
        splits = max(1, min(_blocks(2 * self.sm_count, tiles), most_splits))
        chunk = _blocks(_blocks(batch, splits), depth) * depth
        splits = _blocks(batch, chunk)
        return PreparedLaunch(k.weight_grads, (_blocks(N, t), _blocks(M, t), splits),
                              k.shape.threads, self.stream, (A, dZ, dW, db, chunk))

    def prepare_input_grads(self, dZ, W, A_prev, dA, code: int) -> PreparedLaunch:
        """dA = (dZ @ W^T) * act'(A_prev)."""
        M, N = dZ.shape[0], W.shape[0]
        k = self._kernels(M, N)
        t = k.shape.tile
        return PreparedLaunch(k.input_grads, (_blocks(N, t), _blocks(M, t)), k.shape.threads,
                              self.stream, (dZ, W, dA, A_prev, code))

    # One-off launches (tests, benchmarks): prepare and launch at once.

    def forward(self, A, W, bias, Z, code: int) -> None:
        self.prepare_forward(A, W, bias, Z, code)()

    def weight_grads(self, A, dZ, dW, db) -> None:
        launch = self.prepare_weight_grads(A, dZ, dW, db)
        if launch is not None:
            launch()

    def input_grads(self, dZ, W, A_prev, dA, code: int) -> None:
        self.prepare_input_grads(dZ, W, A_prev, dA, code)()
