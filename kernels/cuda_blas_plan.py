"""The layer-by-layer step with the products in cuBLAS (kernels/cuda_blas.py) and the
elementwise work in one numba-cuda kernel per layer and direction (kernels/cuda_epilogue.py).

Per step, for L layers: L forward products + L bias/activation passes, the head, then per
layer a weight-gradient product, a bias-gradient product (a row of ones times dZ, in exact
float32), and below the top an input-gradient product + a derivative pass. With bf16, one
more pass makes the bf16 copy of the weights at the start (they change every step), one of the
inputs and one of the top delta; the other copies come out of the passes above.

The calls are launched one by one: CuPy (14.2) refuses cuBLAS calls while a stream is being
captured ("calling cuBLAS API during stream capture is currently unsupported"), so a step
cannot become one CUDA graph through it. The launches are cut instead by fusing: one
elementwise pass per layer and direction, the bias gradient as a product, and the gradient
zeroed inside the optimizer's update (kernels/cuda_optim.py).
"""

import numpy as np

from .cuda_epilogue import bias_activation, bits_of, element_config, times_derivative, to_bf16
from .cuda_launch import PreparedLaunch
from .cuda_network import Workspace
from .cuda_shim import cuda


class BlasPlan:
    """The prepared launches and products of one batch buffer and size, in order."""

    def __init__(self, net, batch, rows: int):
        blas = net.blas
        self.work = w = Workspace(net, batch, rows)
        self.stream = blas.stream
        low = _LowCopies(net, w, rows) if blas.low else None
        self.calls = [] if low is None else [low.weights_launch, low.inputs_launch]
        elements = _Elements(net, rows)
        ones = cuda.to_device(np.ones(rows, dtype=np.float32), stream=net.stream)
        self.ones = ones
        layers = len(net.layer_shapes)

        def operand(full, l_low):          # what a product reads at this precision
            return full if low is None else l_low

        A, A_low = w.X, None if low is None else low.X
        for l, ((W, b), (i, o)) in enumerate(zip(net.param_views, net.layer_shapes,
                                                 strict=True)):
            code = net.act if l < layers - 1 else 0     # the last layer is linear
            Z = w.outputs[l]
            self.calls.append(blas.row_major(operand(A, A_low), (rows, i), False,
                                             operand(W, low and low.W[l]), (i, o), False, Z))
            keep_low = low is not None and l < layers - 1
            self.calls.append(elements.bias_activation(Z, b, o, code,
                                                       low.outputs[l] if keep_low else None))
            A, A_low = Z, (low.outputs[l] if keep_low else None)
        self.calls.append(w.head(net, rows))
        if low is not None:
            self.calls.append(low.top_delta_launch)
        for l in range(layers - 1, -1, -1):
            (dW, db), (i, o) = net.grad_views[l], net.layer_shapes[l]
            dZ, dZ_low = w.deltas[l], None if low is None else low.deltas[l]
            A_prev = w.X if l == 0 else w.outputs[l - 1]
            A_prev_low = None if low is None else (low.X if l == 0 else low.outputs[l - 1])
            self.calls.append(blas.row_major(operand(A_prev, A_prev_low), (rows, i), True,
                                             operand(dZ, dZ_low), (rows, o), False, dW,
                                             accumulate=True))
            self.calls.append(blas.row_major(ones, (1, rows), False, dZ, (rows, o), False,
                                             db, accumulate=True, exact=True))
            if l > 0:
                dA = w.deltas[l - 1]
                self.calls.append(blas.row_major(operand(dZ, dZ_low), (rows, o), False,
                                                 operand(net.param_views[l][0],
                                                         low and low.W[l]), (i, o), True, dA))
                self.calls.append(elements.times_derivative(
                    dA, w.outputs[l - 1], net.act, None if low is None else low.deltas[l - 1]))

    def __call__(self) -> None:
        with self.stream:          # CuPy's calls run on its current stream: make it ours
            for call in self.calls:
                call()


class _Elements:
    """The epilogue kernels' launches, for one batch size."""

    def __init__(self, net, rows: int):
        self.net, self.rows = net, rows
        self.nothing = cuda.device_array(1, dtype=np.uint16)      # "no bf16 copy"

    def _config(self, total):
        return element_config(total, self.net.sm_count, self.net.stream)

    def bias_activation(self, Z, bias, width, code, low):
        flat = Z.reshape(Z.size)
        return PreparedLaunch(bias_activation, *self._config(flat.size), (
            flat, bits_of(flat), bias, width, flat.size, code, *self._low(low)))

    def times_derivative(self, dA, A, code, low):
        flat = dA.reshape(dA.size)
        return PreparedLaunch(times_derivative, *self._config(flat.size), (
            flat, bits_of(flat), A.reshape(A.size), flat.size, code, *self._low(low)))

    def _low(self, low):
        """(the flat bf16 copy to write, 1), or (a placeholder, 0) for none."""
        return (self.nothing, 0) if low is None else (low.reshape(low.size), 1)


class _LowCopies:
    """The bf16 (uint16) copies the products read under --precision bf16: the weights (made
    at the start of each step from the float32 master copy), the inputs, every hidden
    layer's output and both delta buffers, laid out like their float32 originals."""

    def __init__(self, net, w: Workspace, rows: int):
        config = lambda total: element_config(total, net.sm_count, net.stream)  # noqa: E731
        n = net.n_params
        self.params = cuda.device_array(n, dtype=np.uint16)
        self.W = []
        for (W, _), (i, o) in zip(net.param_views, net.layer_shapes, strict=True):
            start = _offset_in(W, net.params)
            self.W.append(self.params[start:start + i * o].reshape(i, o))
        self.weights_launch = PreparedLaunch(to_bf16, *config(n),
                                             (bits_of(net.params[:n]), self.params, n))
        x_flat = w.X.reshape(w.X.size)
        self.X_flat = cuda.device_array(x_flat.size, dtype=np.uint16)
        self.X = self.X_flat.reshape(w.X.shape)
        self.inputs_launch = PreparedLaunch(to_bf16, *config(x_flat.size),
                                            (bits_of(x_flat), self.X_flat, x_flat.size))
        self.out_flat = cuda.device_array(w.out_flat.size, dtype=np.uint16)
        self.outputs, start = [], 0
        for o in w.widths:
            self.outputs.append(self.out_flat[start:start + rows * o].reshape(rows, o))
            start += rows * o
        self.delta_flat = [cuda.device_array(d.size, dtype=np.uint16) for d in w.delta_flat]
        self.deltas = [self.delta_flat[l % 2][:rows * o].reshape(rows, o)
                       for l, o in enumerate(w.widths)]
        top = len(w.widths) - 1
        top_low = self.deltas[top].reshape(rows * w.widths[top])
        self.top_delta_launch = PreparedLaunch(to_bf16, *config(top_low.size), (
            bits_of(w.top_delta_flat), top_low, top_low.size))


def _offset_in(view, flat) -> int:
    """Where a device view starts inside the flat float32 buffer it was cut from."""
    from .cuda_blas import pointer

    return (pointer(view) - pointer(flat)) // 4

