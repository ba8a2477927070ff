"""The whole network's gradient on the GPU: the fused one-launch kernel for small models,
the layer-by-layer kernels otherwise.

`DeviceNetwork` knows the flat layout (docs/INTERFACES.md: layer l is W_l (i, o) row-major
then b_l (o)), holds device views of each layer's W and b inside the flat parameter and
gradient buffers, and per-batch-size plans: workspaces for the layer outputs and deltas
and the step's kernel launches, prepared once (kernels/cuda_launch.py). Slicing device
arrays and converting launch arguments from Python costs microseconds each, and the small
model's whole step is only a few dozen microseconds of GPU work.

`loss_grad(batch, rows)` ADDS the gradient SUM over the rows into the gradient buffer and
the loss totals into its STATS slots (kernels/cuda_heads.py); the buffer must be zero
before. `batch` is the flat float32 device array the batch was copied into: rows *
features inputs, then the rows labels as float32.
"""

import numpy as np

from .cuda_dense import TINY, DenseLauncher
from .cuda_fused import FUSED_THREADS, pick_tile, prepare_fused
from .cuda_heads import prepare_head
from .cuda_shim import cuda, simulated, threads_per_block

_MAX_CACHED_BATCH_SIZES = 4


class DeviceNetwork:
    """Layout, views and workspaces of one MLP on one GPU stream.

    fused: None picks the fused kernel whenever the model fits it; True/False force it
    (True raises if it does not fit). tile: samples per block of the fused kernel (None:
    automatic). shapes: a forced tile shape for the matrix kernels (tests, benchmarks).
    products: the layer-by-layer path's matrix products, "blas" (cuBLAS through CuPy,
    kernels/cuda_blas.py) or "tiles" (ours); None: blas where CuPy can run it. precision:
    fp32 | tf32 | bf16, of the cuBLAS products (the fused kernel and the tiles are fp32).
    In the simulator, where each thread is a Python thread, blocks are made small (TINY
    tiles, 32 threads) unless asked otherwise: same code, far fewer threads.
    """

    def __init__(self, layer_shapes, act, task, stream, sm_count, fused=None, tile=None,
                 shapes=None, fused_threads=None, products=None, precision="fp32"):
        if simulated():
            shapes = shapes or TINY
        self.layer_shapes = [(int(i), int(o)) for i, o in layer_shapes]
        self.widths = [self.layer_shapes[0][0]] + [o for _, o in self.layer_shapes]
        self.act, self.task = int(act), int(task)
        self.stream, self.sm_count = stream, sm_count
        self.n_params = sum(i * o + o for i, o in self.layer_shapes)
        self.dense = DenseLauncher(stream, sm_count, shapes)
        self.fused, self.tile = fused, tile
        self.fused_threads = fused_threads or threads_per_block(FUSED_THREADS)
        if fused and pick_tile(self.widths, 1, sm_count) == 0:
            raise ValueError("this network is too large for the fused kernel")
        self.widths_d = cuda.to_device(np.array(self.widths, dtype=np.int64), stream=stream)
        self.products, self.precision = pick_products(products, precision), precision
        self.blas = None
        if self.products == "blas":
            from .cuda_blas import Blas

            self.blas = Blas(stream, precision)
        self._plans = {}

    def bind(self, params, grad) -> None:
        """Use these device buffers: params (n_params,), grad (n_params + STATS,)."""
        self.params, self.grad = params, grad
        self.param_views = self._layer_views(params)
        self.grad_views = self._layer_views(grad)
        self._plans.clear()

    def _layer_views(self, flat):
        views, start = [], 0
        for i, o in self.layer_shapes:
            views.append((flat[start:start + i * o].reshape(i, o),
                          flat[start + i * o:start + i * o + o]))
            start += i * o + o
        return views

    def uses_fused(self, rows: int) -> bool:
        return self.fused is not False and self._fused_tile(rows) > 0

    def _fused_tile(self, rows: int) -> int:
        return pick_tile(self.widths, rows, self.sm_count, self.tile)

    def loss_grad(self, batch, rows: int) -> None:
        if rows > 0:
            self._plan(batch, rows)()

    def _plan(self, batch, rows):
        """The prepared launches for this batch buffer and size (made once per pair)."""
        # The plan holds the batch array, so no other object can take its id meanwhile.
        key = (rows, id(batch))
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _MAX_CACHED_BATCH_SIZES:
                self._plans.pop(next(iter(self._plans)))
            if self.uses_fused(rows):
                kind = FusedPlan
            elif self.blas is not None:
                from .cuda_blas_plan import BlasPlan  # it builds on this module's Workspace

                kind = BlasPlan
            else:
                kind = LayeredPlan
            plan = kind(self, batch, rows)
            self._plans[key] = plan
        return plan


def pick_products(products, precision: str) -> str:
    """"blas" or "tiles" for the products of the layer-by-layer path (see DeviceNetwork)."""
    from .cuda_blas import PRECISIONS, blas_available

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if products not in (None, "blas", "tiles"):
        raise ValueError(f"products must be blas or tiles, not {products!r}")
    if products == "tiles" or (products is None and simulated()):
        chosen, why = "tiles", "the simulator has no cuBLAS"
    else:
        ok, why = blas_available()
        if products == "blas" and not ok:
            raise ValueError(why)
        chosen = "blas" if ok else "tiles"
    if chosen == "tiles" and precision != "fp32":
        raise ValueError(f"precision {precision} needs cuBLAS through CuPy "
                         f"(pip install 'hpctrain[cuda12]' or '[cuda13]'): {why}")
    return chosen


class FusedPlan:
    """The whole step's gradient in one launch of the fused kernel."""

    def __init__(self, net: DeviceNetwork, batch, rows: int):
        self.batch = batch
        self.launch = prepare_fused(net.stream, net.params, net.grad, batch, rows,
                                    net.widths_d, net.act, net.task, net._fused_tile(rows),
                                    net.fused_threads)

    def __call__(self) -> None:
        self.launch()


class Workspace:
    """Device views of one batch for the layer-by-layer plans: the inputs X, the labels,
    each layer's output, and each layer's delta.

    Layer l's delta lives in one of two ping-pong buffers (l's parity), each big enough
    for the widest layer, so the backward pass needs no more than two.
    """

    def __init__(self, net: DeviceNetwork, batch, rows: int):
        self.batch = batch       # held, so no other array can take its id meanwhile
        features = net.widths[0]
        self.X = batch[:rows * features].reshape(rows, features)
        self.labels = batch[rows * features:rows * features + rows]
        self.widths = widths = [o for _, o in net.layer_shapes]
        self.out_flat = cuda.device_array(rows * sum(widths), dtype=np.float32)
        self.outputs, start = [], 0
        for o in widths:
            self.outputs.append(self.out_flat[start:start + rows * o].reshape(rows, o))
            start += rows * o
        self.logits_flat = self.out_flat[start - rows * widths[-1]:start]
        self.delta_flat = [cuda.device_array(rows * max(widths), dtype=np.float32)
                           for _ in range(2)]
        self.deltas = [self.delta_flat[l % 2][:rows * o].reshape(rows, o)
                       for l, o in enumerate(widths)]
        last = len(widths) - 1
        self.top_delta_flat = self.delta_flat[last % 2][:rows * widths[-1]]

    def head(self, net: DeviceNetwork, rows: int):
        """The head's prepared launch: loss totals and the top layer's delta."""
        return prepare_head(net.stream, self.logits_flat, self.labels, self.top_delta_flat,
                            rows, net.layer_shapes[-1][1], net.grad, net.n_params, net.task)


class LayeredPlan:
    """Layer by layer with our tile kernels: the launches of the whole step in order
    (forward, head, backward), over one Workspace."""

    def __init__(self, net: DeviceNetwork, batch, rows: int):
        self.work = w = Workspace(net, batch, rows)
        dense, layers = net.dense, len(net.layer_shapes)
        self.launches = []
        A = w.X
        for l, (W, b) in enumerate(net.param_views):
            code = net.act if l < layers - 1 else 0     # the last layer is linear
            self.launches.append(dense.prepare_forward(A, W, b, w.outputs[l], code))
            A = w.outputs[l]
        self.launches.append(w.head(net, rows))
        for l in range(layers - 1, -1, -1):
            dW, db = net.grad_views[l]
            A_prev = w.X if l == 0 else w.outputs[l - 1]
            self.launches.append(dense.prepare_weight_grads(A_prev, w.deltas[l], dW, db))
            if l > 0:
                self.launches.append(dense.prepare_input_grads(
                    w.deltas[l], net.param_views[l][0], A_prev, w.deltas[l - 1], net.act))

    def __call__(self) -> None:
        for launch in self.launches:
            launch()
