"""Loss heads on the logits Z (n, o): loss sum, count of right predictions, gradient dL/dZ.

All three are written to stay finite for any finite logit:
  binary      BCE from the logit: max(z, 0) - z y + log1p(exp(-|z|)); dL/dz = sigmoid(z) - y
  multiclass  log-sum-exp with the row max subtracted; dL/dz = softmax(z) - onehot(y)
  regression  (z - y)^2; dL/dz = 2 (z - y)
Per-sample losses are computed and summed in float64 (a sum over a large batch in float32
would lose digits); gradients are stored in the dtype of dZ. Labels that cannot be right
(a class outside [0, C), a binary label other than 0 or 1) raise ValueError instead of
reading outside the row.
"""

import math

import numpy as np
from numba import njit

from . import BINARY, MULTICLASS, REGRESSION


@njit(cache=True, nogil=True, error_model="numpy")
def stable_sigmoid(z):
    """1 / (1 + exp(-z)) without overflow on either side (z is float64)."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True, nogil=True, error_model="numpy")
def binary_row(Z, y, dZ, r, want_grad):
    z = np.float64(Z[r, 0])
    label = y[r]
    if label != 0 and label != 1:
        raise ValueError("binary labels must be 0 or 1")
    t = np.float64(label)
    e = math.exp(-abs(z))  # one exponential serves the loss and the sigmoid
    if want_grad:
        dZ[r, 0] = (1.0 if z >= 0 else e) / (1.0 + e) - t
    correct = (z > 0) == (t > 0.5)
    return max(z, 0.0) - z * t + math.log1p(e), correct


@njit(cache=True, nogil=True, error_model="numpy")
def multiclass_row(Z, y, dZ, r, want_grad):
    o = Z.shape[1]
    label = y[r]
    k = np.int64(label)
    if k != label or k < 0 or k >= o:
        raise ValueError("class label outside [0, classes)")
    best = 0
    top = np.float64(Z[r, 0])
    for c in range(1, o):
        if Z[r, c] > top:
            top = np.float64(Z[r, c])
            best = c
    total = 0.0
    if want_grad:  # keep exp(z - top) in dZ, then scale it into the softmax
        for c in range(o):
            e = math.exp(np.float64(Z[r, c]) - top)
            total += e
            dZ[r, c] = e
        inv = 1.0 / total
        for c in range(o):
            dZ[r, c] *= inv
        dZ[r, k] -= 1
    else:
        for c in range(o):
            total += math.exp(np.float64(Z[r, c]) - top)
    log_total = math.log(total)
    return top + log_total - np.float64(Z[r, k]), best == k


@njit(cache=True, nogil=True, error_model="numpy")
def regression_row(Z, y, dZ, r, want_grad):
    d = np.float64(Z[r, 0]) - np.float64(y[r])
    if want_grad:
        dZ[r, 0] = 2.0 * d
    return d * d, False


@njit(cache=True, nogil=True, error_model="numpy")
def head_loss_grad(Z, y, dZ, task, want_grad):
    """(loss sum as float64, right predictions); dZ = dL/dZ per sample when want_grad.

    Pass Z itself as dZ when want_grad is False (it is not written then).
    """
    n = Z.shape[0]
    loss = 0.0
    correct = 0
    if task == BINARY:
        for r in range(n):
            sample_loss, right = binary_row(Z, y, dZ, r, want_grad)
            loss += sample_loss
            correct += right
    elif task == MULTICLASS:
        for r in range(n):
            sample_loss, right = multiclass_row(Z, y, dZ, r, want_grad)
            loss += sample_loss
            correct += right
    elif task == REGRESSION:
        for r in range(n):
            sample_loss, _ = regression_row(Z, y, dZ, r, want_grad)
            loss += sample_loss
    else:
        raise ValueError("unknown task code")
    return loss, correct


@njit(cache=True, nogil=True, error_model="numpy")
def head_output(Z, task, out):
    """What the model predicts from logits Z, written into out (same shape as Z):
    binary P(y = 1), multiclass the softmax rows, regression Z itself."""
    n, o = Z.shape
    if task == BINARY:
        for r in range(n):
            out[r, 0] = stable_sigmoid(np.float64(Z[r, 0]))
    elif task == MULTICLASS:
        for r in range(n):
            top = np.float64(Z[r, 0])
            for c in range(1, o):
                top = max(top, np.float64(Z[r, c]))
            total = 0.0
            for c in range(o):
                total += math.exp(np.float64(Z[r, c]) - top)
            for c in range(o):
                out[r, c] = math.exp(np.float64(Z[r, c]) - top) / total
    elif task == REGRESSION:
        out[:, :] = Z
    else:
        raise ValueError("unknown task code")
