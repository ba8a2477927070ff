"""Bias + activation fused into one pass, and the activation's derivative.

The derivative is written in terms of the activation's OUTPUT A (relu: A > 0,
tanh: 1 - A^2, sigmoid: A (1 - A)), so the backward pass needs only the stored outputs,
never the pre-activations. Each activation has its own loop with the branch outside it,
so LLVM can vectorise the loop body.
"""

import math

from numba import njit

from . import IDENTITY, RELU, SIGMOID, TANH


@njit(cache=True, nogil=True, error_model="numpy")
def add_bias_activate(Z, b, code):
    """Z[r, c] = act(Z[r, c] + b[c]) in place; Z is (n, o), b is (o,)."""
    n, o = Z.shape
    if code == RELU:
        for r in range(n):
            for c in range(o):
                z = Z[r, c] + b[c]
                Z[r, c] = z if z > 0 else 0
    elif code == TANH:
        for r in range(n):
            for c in range(o):
                Z[r, c] = math.tanh(Z[r, c] + b[c])
    elif code == SIGMOID:
        for r in range(n):
            for c in range(o):
                # exp(-z) may overflow to inf for very negative z: 1/inf = 0, no NaN.
                Z[r, c] = 1 / (1 + math.exp(-(Z[r, c] + b[c])))
    elif code == IDENTITY:
        for r in range(n):
            for c in range(o):
                Z[r, c] += b[c]
    else:
        raise ValueError("unknown activation code")


@njit(cache=True, nogil=True, error_model="numpy")
def scale_by_derivative(dA, A, code):
    """dA *= act'(.) in place, with the derivative computed from the output A."""
    n, o = dA.shape
    if code == RELU:
        for r in range(n):
            for c in range(o):
                # a select, not a branch around the store: this form vectorises
                dA[r, c] = dA[r, c] if A[r, c] > 0 else 0
    elif code == TANH:
        for r in range(n):
            for c in range(o):
                a = A[r, c]
                dA[r, c] *= 1 - a * a
    elif code == SIGMOID:
        for r in range(n):
            for c in range(o):
                a = A[r, c]
                dA[r, c] *= a * (1 - a)
    elif code != IDENTITY:
        raise ValueError("unknown activation code")
