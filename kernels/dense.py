"""One dense layer: Z = act(A_prev @ W + b) forward; dW, db and the previous delta backward.

Matrix products are `np.dot` with an output argument, which Numba lowers to a BLAS sgemm
(from SciPy) writing straight into the caller's buffer: no temporaries. Transposes are
views (`A.T` of a C array is Fortran-ordered), which BLAS takes as a flag, not a copy.
All arrays must be float32 and contiguous; n (the batch) must be at least 1, since BLAS
rejects leading dimensions of 0 (the whole-network kernel handles empty batches itself).
"""

import numpy as np
from numba import njit

from .activations import add_bias_activate, scale_by_derivative


@njit(cache=True, nogil=True, error_model="numpy")
def dense_forward(A_prev, W, b, Z, code):
    """Z (n, o) = act(A_prev (n, i) @ W (i, o) + b (o,))."""
    np.dot(A_prev, W, Z)
    add_bias_activate(Z, b, code)


@njit(cache=True, nogil=True, error_model="numpy")
def column_sums(dZ, db):
    """db[c] = sum over rows of dZ[:, c], summed row by row so the inner loop is contiguous."""
    n, o = dZ.shape
    db[:] = 0
    for r in range(n):
        for c in range(o):
            db[c] += dZ[r, c]


@njit(cache=True, nogil=True, error_model="numpy")
def dense_backward(A_prev, W, dZ, dW, db, dZ_prev, prev_code, want_prev):
    """Gradients of one layer given dZ = dL/dZ (n, o).

    dW = A_prev^T dZ and db = column sums of dZ (written over dW, db); when want_prev,
    dZ_prev = (dZ W^T) * act'(A_prev), the delta of the layer below, where A_prev is that
    layer's output and prev_code its activation (IDENTITY gives plain dL/dA_prev).
    """
    np.dot(A_prev.T, dZ, dW)
    column_sums(dZ, db)
    if want_prev:
        np.dot(dZ, W.T, dZ_prev)
        scale_by_derivative(dZ_prev, A_prev, prev_code)
