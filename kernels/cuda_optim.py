"""Fused optimizer updates on the GPU: one pass over the flat buffers per step.

The formulas, and the order of their float32 operations, are those of kernels/optim.py
(the CPU path), and Adam's per-step scalars come from its `adam_scalars`, so a checkpoint
moves between the two and both reach the same parameters to float32 rounding:
    SGD   v = mu v + g;  theta -= lr v + lr wd theta            (v = g when mu = 0)
    Adam  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
          theta -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps) + lr wd theta
with g = grad_sum * scale (scale = 1 / global sample count) folded into the same pass.

Each kernel also zeroes the gradient buffer as it reads it, STATS slots included, so the
next step's gradient kernels can accumulate into it with atomics without another launch.
Optimizer state is ONE (buffers, n) device array: fewer arguments, cheaper launches.
"""

import math

import numpy as np

from .cuda_launch import PreparedLaunch
from .cuda_shim import cuda, kernel_options, threads_per_block
from .optim import adam_scalars

ZERO = np.float32(0.0)
UPDATE_THREADS = 256


@cuda.jit(device=True)
def clear_tail(grad, n, start):
    """Zero grad[n:] (the STATS slots) from the grid's first thread."""
    if start == 0:
        for i in range(n, grad.shape[0]):
            grad[i] = ZERO


@cuda.jit(**kernel_options())
def sgd_update(params, grad, scale, step, decay):
    start = cuda.grid(1)
    n = params.shape[0]
    for i in range(start, n, cuda.gridsize(1)):
        g = grad[i] * scale
        grad[i] = ZERO
        p = params[i]
        params[i] = p - step * g - decay * p
    clear_tail(grad, n, start)


@cuda.jit(**kernel_options())
def sgd_momentum_update(params, grad, state, scale, mu, step, decay):
    start = cuda.grid(1)
    n = params.shape[0]
    for i in range(start, n, cuda.gridsize(1)):
        v = mu * state[0, i] + grad[i] * scale
        grad[i] = ZERO
        state[0, i] = v
        p = params[i]
        params[i] = p - step * v - decay * p
    clear_tail(grad, n, start)


@cuda.jit(**kernel_options())
def adam_update(params, grad, state, scale, step, inv_root_bc2, b1, b2, one_b1, one_b2, eps,
                decay):
    start = cuda.grid(1)
    n = params.shape[0]
    for i in range(start, n, cuda.gridsize(1)):
        g = grad[i] * scale
        grad[i] = ZERO
        m = b1 * state[0, i] + one_b1 * g
        v = b2 * state[1, i] + one_b2 * (g * g)
        state[0, i] = m
        state[1, i] = v
        p = params[i]
        params[i] = p - step * m / (math.sqrt(v) * inv_root_bc2 + eps) - decay * p
    clear_tail(grad, n, start)


@cuda.jit(**kernel_options())
def clear(buf):
    for i in range(cuda.grid(1), buf.shape[0], cuda.gridsize(1)):
        buf[i] = ZERO


def launch_config(n: int, sm_count: int, stream):
    """Enough blocks to stream the buffers at full bandwidth, no more (grid-stride loops)."""
    threads = threads_per_block(UPDATE_THREADS)
    return max(1, min(-(-n // threads), 8 * max(1, sm_count))), threads, stream


def f32(x) -> np.float32:
    return np.float32(x)


def prepare_clear(stream, buf, sm_count: int) -> PreparedLaunch:
    return PreparedLaunch(clear, *launch_config(buf.shape[0], sm_count, stream), (buf,))


class DeviceUpdate:
    """The update kernel of one optimizer, bound to its buffers once; each `apply`
    passes only the step's float32 scalars."""

    def __init__(self, name, stream, sm_count, momentum=0.0, weight_decay=0.0, beta1=0.9,
                 beta2=0.999, eps=1e-8):
        self.name, self.stream = name, stream
        self.momentum, self.weight_decay = momentum, weight_decay
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.sm_count = sm_count
        self.bound = None

    def bind(self, params, grad, state) -> None:
        """The flat parameters, gradient (zeroed by every update) and (buffers, n) state."""
        config = launch_config(params.shape[0], self.sm_count, self.stream)
        zero = f32(0.0)
        if self.name == "adam":
            self.bound = PreparedLaunch(adam_update, *config,
                                        (params, grad, state) + (zero,) * 9)
        elif self.momentum > 0:
            self.bound = PreparedLaunch(sgd_momentum_update, *config,
                                        (params, grad, state) + (zero,) * 4)
        else:
            self.bound = PreparedLaunch(sgd_update, *config, (params, grad) + (zero,) * 3)
        self.buffers = (params, grad, state)

    def apply(self, params, grad, state, scale, lr, t) -> None:
        """One step (t counts from 1) with g = grad * scale; zeroes grad (all of it)."""
        if self.bound is None or any(
                a is not b for a, b in zip(self.buffers, (params, grad, state), strict=True)):
            self.bind(params, grad, state)
        decay = f32(lr * self.weight_decay)
        if self.name == "adam":
            # the CPU kernel's own scalars; float32 again, since Numba returns Python floats
            scalars = adam_scalars(lr, self.beta1, self.beta2, self.eps, t)
            self.bound(f32(scale), *(f32(x) for x in scalars), decay)
        elif self.momentum > 0:
            self.bound(f32(scale), f32(self.momentum), f32(lr), decay)
        else:
            self.bound(f32(scale), f32(lr), decay)
