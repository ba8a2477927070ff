"""An independent float64 NumPy MLP: the reference the CUDA kernels are checked against.

Same contract as docs/INTERFACES.md (flat layout: W_l (i, o) row-major then b_l; hidden
layers share one activation; the last layer is linear and feeds the head), written
the plain way, with none of hpctrain's code.
"""

import numpy as np


def activate(z, act):
    if act == "relu":
        return np.maximum(z, 0.0)
    if act == "tanh":
        return np.tanh(z)
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return z


def derivative_from_output(a, act):
    if act == "relu":
        return (a > 0).astype(np.float64)
    if act == "tanh":
        return 1.0 - a * a
    if act == "sigmoid":
        return a * (1.0 - a)
    return np.ones_like(a)


def layer_views(widths, flat):
    out, start = [], 0
    for i, o in zip(widths[:-1], widths[1:], strict=True):
        out.append((flat[start:start + i * o].reshape(i, o), flat[start + i * o:start + i * o + o]))
        start += i * o + o
    return out


def n_params(widths):
    return sum(i * o + o for i, o in zip(widths[:-1], widths[1:], strict=True))


def head(Z, y, task):
    """(per-sample losses, per-sample correct (bool), dL/dZ) in float64."""
    if task == "binary":
        z, t = Z[:, 0], y.astype(np.float64)
        loss = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        dZ = (1.0 / (1.0 + np.exp(-z)) - t)[:, None]
        return loss, (z > 0) == (t > 0.5), dZ
    if task == "multiclass":
        k = y.astype(np.int64)
        shifted = Z - Z.max(axis=1, keepdims=True)
        log_total = np.log(np.exp(shifted).sum(axis=1))
        loss = log_total - shifted[np.arange(len(k)), k]
        dZ = np.exp(shifted - log_total[:, None])
        dZ[np.arange(len(k)), k] -= 1.0
        return loss, Z.argmax(axis=1) == k, dZ
    d = Z[:, 0] - y.astype(np.float64)
    return d * d, np.zeros(len(d), dtype=bool), (2.0 * d)[:, None]


def loss_grad(widths, act, task, params, X, y):
    """(loss sum, correct, gradient SUM over rows) of the whole network, in float64."""
    layers = layer_views(widths, np.asarray(params, dtype=np.float64))
    A = [np.asarray(X, dtype=np.float64)]
    for l, (W, b) in enumerate(layers):
        Z = A[-1] @ W + b
        A.append(Z if l == len(layers) - 1 else activate(Z, act))
    losses, correct, dZ = head(A[-1], y, task)
    grad = np.zeros(n_params(widths))
    grads = layer_views(widths, grad)
    for l in range(len(layers) - 1, -1, -1):
        dW, db = grads[l]
        dW[:] = A[l].T @ dZ
        db[:] = dZ.sum(axis=0)
        if l > 0:
            dZ = (dZ @ layers[l][0].T) * derivative_from_output(A[l], act)
    return losses.sum(), int(correct.sum()), grad


def random_problem(rng, widths, task, rows):
    """Parameters, inputs and labels on odd shapes, values of order one."""
    params = (rng.standard_normal(n_params(widths)) * 0.5).astype(np.float32)
    X = rng.standard_normal((rows, widths[0])).astype(np.float32)
    if task == "binary":
        y = rng.integers(0, 2, rows).astype(np.int32)
    elif task == "multiclass":
        y = rng.integers(0, widths[-1], rows).astype(np.int32)
    else:
        y = rng.standard_normal(rows).astype(np.float32)
    return params, X, y


def close(got, want, tol=2e-5):
    """Relative max error, scaled by the reference's largest magnitude."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.all(np.isfinite(got)), "non-finite values"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0)) / scale
    assert err <= tol, f"relative error {err:.3g} > {tol:.3g}"
    return err


def close_to_product(got, want, magnitude, tol=1e-5):
    """Elementwise: |got - want| <= tol * magnitude, where magnitude bounds the terms that
    were summed (|A| @ |W| + |b| for A @ W + b). Float32 rounding grows with that sum, not
    with the result, which can be small after cancellation (or after tanh)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.all(np.isfinite(got)), "non-finite values"
    excess = np.abs(got - want) - tol * (np.asarray(magnitude, dtype=np.float64) + 1e-3)
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert excess[worst] <= 0, (f"error {abs(got[worst] - want[worst]):.3g} at {worst} over "
                                f"{tol:.1e} x magnitude {magnitude[worst]:.3g}")
