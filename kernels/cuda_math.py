"""Per-element device functions shared by the CUDA kernels: activations and loss heads.

Same formulas as the CPU modules (activations.py, heads.py), in float32: the derivative is
taken from the activation's OUTPUT (relu: A > 0, tanh: 1 - A^2, sigmoid: A (1 - A)), and
every head stays finite for any finite logit (BCE from the logit, log-sum-exp with the row
maximum subtracted). Constants are NumPy float32 scalars: a bare Python literal would make
Numba promote the arithmetic to float64, half speed or worse on a GPU.

An impossible label (binary other than 0/1, a class outside [0, C) or not whole)
gives a NaN loss and a zero gradient, and `head_sample` reports it, so the caller can raise
the same error the CPU path raises instead of reading outside the row.
"""

import math

import numpy as np

from . import BINARY, MULTICLASS, RELU, SIGMOID, TANH
from .cuda_shim import cuda

ZERO = np.float32(0.0)
ONE = np.float32(1.0)
TWO = np.float32(2.0)
HALF = np.float32(0.5)
NAN = np.float32(np.nan)


@cuda.jit(device=True)
def sigmoid(z):
    """1 / (1 + exp(-z)) without overflow on either side."""
    if z >= ZERO:
        return ONE / (ONE + math.exp(-z))
    e = math.exp(z)
    return e / (ONE + e)


@cuda.jit(device=True)
def activate(z, code):
    if code == RELU:
        return z if z > ZERO else ZERO
    if code == TANH:
        return math.tanh(z)
    if code == SIGMOID:
        return sigmoid(z)
    return z


@cuda.jit(device=True)
def derivative_from_output(a, code):
    """act'(z) written in terms of a = act(z)."""
    if code == RELU:
        return ONE if a > ZERO else ZERO
    if code == TANH:
        return ONE - a * a
    if code == SIGMOID:
        return a * (ONE - a)
    return ONE


@cuda.jit(device=True)
def binary_sample(Z, z_at, dZ, d_at, label):
    z = Z[z_at]
    if label != ZERO and label != ONE:
        dZ[d_at] = ZERO
        return NAN, ZERO, ONE
    dZ[d_at] = sigmoid(z) - label
    correct = ONE if (z > ZERO) == (label > HALF) else ZERO
    positive = z if z > ZERO else ZERO
    return positive - z * label + math.log1p(math.exp(-abs(z))), correct, ZERO


@cuda.jit(device=True)
def multiclass_sample(Z, z_at, dZ, d_at, classes, label):
    k = int(label)
    if k < 0 or k >= classes or np.float32(k) != label:
        for c in range(classes):
            dZ[d_at + c] = ZERO
        return NAN, ZERO, ONE
    best = 0
    top = Z[z_at]
    for c in range(1, classes):
        if Z[z_at + c] > top:
            top = Z[z_at + c]
            best = c
    total = ZERO
    for c in range(classes):
        total += math.exp(Z[z_at + c] - top)
    inv = ONE / total
    for c in range(classes):
        dZ[d_at + c] = math.exp(Z[z_at + c] - top) * inv
    dZ[d_at + k] -= ONE
    correct = ONE if best == k else ZERO
    return top + math.log(total) - Z[z_at + k], correct, ZERO


@cuda.jit(device=True)
def head_sample(Z, z_at, dZ, d_at, outputs, label, task):
    """One sample's (loss, correct, bad label) from its logits Z[z_at : z_at + outputs];
    writes dL/dz to dZ[d_at : d_at + outputs]. Flat arrays and offsets, so the same code
    reads a logits matrix in global memory or a tile in shared memory."""
    if task == BINARY:
        return binary_sample(Z, z_at, dZ, d_at, label)
    if task == MULTICLASS:
        return multiclass_sample(Z, z_at, dZ, d_at, outputs, label)
    d = Z[z_at] - label
    dZ[d_at] = TWO * d
    return d * d, ZERO, ZERO
