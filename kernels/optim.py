"""Fused optimizer updates: one pass over the flat buffers per step, nothing allocated.

`scale` folds the division of the gradient SUM by the global sample count into the same pass.
Scalars arrive as Python floats (float64); they are cast to float32 once so the loop body
stays in float32 and vectorises. Weight decay uses the parameter's value before the step.
"""

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def sgd_step(params, grad, scale, lr, weight_decay):
    """theta -= lr * g + lr * wd * theta, with g = grad * scale (plain SGD, no momentum)."""
    s = np.float32(scale)
    step = np.float32(lr)
    decay = np.float32(lr * weight_decay)
    for i in range(params.shape[0]):
        p = params[i]
        params[i] = p - step * (grad[i] * s) - decay * p


@njit(cache=True, nogil=True, error_model="numpy")
def sgd_momentum_step(params, grad, velocity, scale, lr, momentum, weight_decay):
    """v = mu v + g; theta -= lr * v + lr * wd * theta, with g = grad * scale."""
    s = np.float32(scale)
    mu = np.float32(momentum)
    step = np.float32(lr)
    decay = np.float32(lr * weight_decay)
    for i in range(params.shape[0]):
        v = mu * velocity[i] + grad[i] * s
        velocity[i] = v
        p = params[i]
        params[i] = p - step * v - decay * p


@njit(cache=True, nogil=True, error_model="numpy")
def adam_scalars(lr, beta1, beta2, eps, t):
    """The float32 scalars of Adam step t (from 1), the same from Python (the CUDA update
    kernel takes them as arguments) and from compiled code (adam_step):
    (lr / bc1, 1 / sqrt(bc2), b1, b2, 1 - b1, 1 - b2, eps), with the bias corrections
    bc = 1 - beta^t computed in float64. Numba boxes float32 results as Python floats:
    wrap them in np.float32 again before passing them on.
    """
    bc1 = 1.0 - beta1 ** t
    bc2 = 1.0 - beta2 ** t
    return (np.float32(lr / bc1), np.float32(1.0 / math.sqrt(bc2)), np.float32(beta1),
            np.float32(beta2), np.float32(1.0 - beta1), np.float32(1.0 - beta2),
            np.float32(eps))


@njit(cache=True, nogil=True, error_model="numpy")
def adam_step(params, grad, m, v, scale, lr, beta1, beta2, eps, weight_decay, t):
    """Adam step number t (from 1), bias-corrected, with decoupled weight decay:
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    theta -= lr * m_hat / (sqrt(v_hat) + eps) + lr * wd * theta.
    The bias corrections are folded into two scalars (adam_scalars), as PyTorch does:
    m_hat / (sqrt(v_hat) + eps) = (m / bc1) / (sqrt(v) / sqrt(bc2) + eps).
    """
    step, inv_root_bc2, b1, b2, one_b1, one_b2, e = adam_scalars(lr, beta1, beta2, eps, t)
    s = np.float32(scale)
    decay = np.float32(lr * weight_decay)
    for i in range(params.shape[0]):
        g = grad[i] * s
        mi = b1 * m[i] + one_b1 * g
        vi = b2 * v[i] + one_b2 * (g * g)
        m[i] = mi
        v[i] = vi
        p = params[i]
        params[i] = p - step * mi / (math.sqrt(vi) * inv_root_bc2 + e) - decay * p
