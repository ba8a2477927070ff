"""An independent float64 NumPy forward/backward for the kernel and model tests, and checks
of the reference itself against central finite differences.

Written from the textbook formulas, deliberately not from the kernels' code: the losses
use np.logaddexp and scipy's logsumexp, derivatives are taken of the pre-activations, and
backpropagation keeps every intermediate.
"""

import numpy as np
import pytest
from scipy.special import expit, logsumexp

ACTIVATION_NAMES = ("identity", "relu", "tanh", "sigmoid")
TASK_NAMES = ("binary", "multiclass", "regression")


def fresh_rng():
    """A generator on a new seed, printed so that a failure can be replayed."""
    seed = np.random.SeedSequence().entropy
    print(f"random seed: {seed}")
    return np.random.default_rng(seed)


def activate(z, name):
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return expit(z)
    return z.copy()


def activation_slope(z, name):
    """d act / d z at the pre-activation z."""
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "tanh":
        return 1.0 / np.cosh(z) ** 2
    if name == "sigmoid":
        return expit(z) * expit(-z)
    return np.ones_like(z)


def head_losses(z, y, task):
    """Per-sample losses from logits z (n, o)."""
    if task == "binary":
        return np.logaddexp(0.0, z[:, 0]) - z[:, 0] * y
    if task == "multiclass":
        return logsumexp(z, axis=1) - z[np.arange(len(y)), y.astype(int)]
    return (z[:, 0] - y) ** 2


def head_gradient(z, y, task):
    if task == "binary":
        return (expit(z[:, 0]) - y)[:, None]
    if task == "multiclass":
        p = np.exp(z - logsumexp(z, axis=1, keepdims=True))
        p[np.arange(len(y)), y.astype(int)] -= 1
        return p
    return 2 * (z - y[:, None])


def head_correct(z, y, task):
    if task == "binary":
        return int(np.sum((z[:, 0] > 0) == (y == 1)))
    if task == "multiclass":
        return int(np.sum(np.argmax(z, axis=1) == y))
    return 0


def unflatten(flat, shapes):
    """[(W, b), ...] float64 copies from a flat buffer in the documented layout."""
    layers, start = [], 0
    for i, o in shapes:
        W = np.array(flat[start:start + i * o], dtype=np.float64).reshape(i, o)
        b = np.array(flat[start + i * o:start + i * o + o], dtype=np.float64)
        layers.append((W, b))
        start += i * o + o
    assert start == len(flat)
    return layers


def flatten(layers):
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in layers])


def network_logits(layers, X, activation):
    A = np.asarray(X, dtype=np.float64)
    for l, (W, b) in enumerate(layers):
        Z = A @ W + b
        A = Z if l == len(layers) - 1 else activate(Z, activation)
    return A


def network_loss(flat, shapes, X, y, activation, task):
    """Loss SUM over the batch as a function of the flat parameters (for finite differences)."""
    logits = network_logits(unflatten(flat, shapes), X, activation)
    return float(np.sum(head_losses(logits, y, task)))


def network_loss_grad(flat, shapes, X, y, activation, task):
    """(loss sum, right predictions, flat gradient SUM), by backpropagation in float64."""
    layers = unflatten(flat, shapes)
    pre, post = [], [np.asarray(X, dtype=np.float64)]
    for l, (W, b) in enumerate(layers):
        Z = post[-1] @ W + b
        pre.append(Z)
        post.append(Z if l == len(layers) - 1 else activate(Z, activation))
    logits = post[-1]
    delta = head_gradient(logits, y, task)
    grads = [None] * len(layers)
    for l in range(len(layers) - 1, -1, -1):
        grads[l] = (post[l].T @ delta, delta.sum(axis=0))
        if l:
            delta = (delta @ layers[l][0].T) * activation_slope(pre[l - 1], activation)
    loss = float(np.sum(head_losses(logits, y, task)))
    return loss, head_correct(logits, y, task), flatten(grads)


def central_differences(f, x, eps=1e-6):
    """df/dx for a scalar f of a float64 vector x, by central differences."""
    x = np.array(x, dtype=np.float64)
    out = np.empty_like(x)
    for k in range(x.size):
        keep = x[k]
        x[k] = keep + eps
        up = f(x)
        x[k] = keep - eps
        down = f(x)
        x[k] = keep
        out[k] = (up - down) / (2 * eps)
    return out


def random_labels(rng, task, n, classes):
    if task == "binary":
        return rng.integers(0, 2, n).astype(np.int32)
    if task == "multiclass":
        return rng.integers(0, classes, n).astype(np.int32)
    return rng.standard_normal(n).astype(np.float32)


def assert_close32(actual, expected, what, rel=2e-4):
    """Equal to float32 accuracy: errors measured against the largest magnitude involved,
    since a gradient SUM over rows carries the rounding of its largest terms."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    assert err <= rel * scale, f"{what}: max error {err:.3g} > {rel * scale:.3g}"


# ---- the reference checks itself against finite differences --------------------------------

@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_reference_backprop_matches_finite_differences(activation, task):
    rng = fresh_rng()
    shapes = [(3, 4), (4, 2), (2, 3 if task == "multiclass" else 1)]
    flat = flatten([(rng.standard_normal(s), rng.standard_normal(s[1])) for s in shapes])
    X = rng.standard_normal((5, 3))
    y = random_labels(rng, task, 5, 3).astype(np.float64)
    _, _, grad = network_loss_grad(flat, shapes, X, y, activation, task)
    numeric = central_differences(lambda p: network_loss(p, shapes, X, y, activation, task),
                                  flat)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)
