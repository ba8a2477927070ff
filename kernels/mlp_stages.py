"""The network's step cut into stages, for overlapping the allreduce with the backward pass.

`kernels.mlp.loss_grad` runs everything in one call, which is fastest when nothing else has to
happen meanwhile. To reduce the last layers' gradients while earlier layers' backward still
runs, the caller needs control back between layers: `forward_head` (forward + loss + dL/dlogits)
then `backward_layer` once per layer, top down. Same layout and workspaces as kernels.mlp; the
ping-pong halves of `deltas` alternate exactly as there, so the results are bitwise the same.
All stages release the GIL, so a communication thread can progress while they run.
"""

from numba import njit

from .dense import dense_backward
from .heads import head_loss_grad
from .mlp import forward, layer_output, weights


@njit(cache=True, nogil=True, error_model="numpy")
def forward_head(params, X, y, offsets, fan_in, fan_out, acts, task, outputs, deltas):
    """Forward pass and head: (loss sum, right); dL/dlogits left in deltas' first half."""
    n = X.shape[0]
    logits = forward(params, X, offsets, fan_in, fan_out, acts, outputs)
    last = fan_in.shape[0] - 1
    dZ = deltas[:n * fan_out[last]].reshape(n, fan_out[last])
    return head_loss_grad(logits, y, dZ, task, True)


@njit(cache=True, nogil=True, error_model="numpy")
def backward_layer(l, params, X, grad, offsets, fan_in, fan_out, acts, outputs, deltas):
    """Layer l's dW and db into grad (and the delta of layer l-1); call for l = L-1 .. 0."""
    n = X.shape[0]
    layers = fan_in.shape[0]
    half = deltas.shape[0] // 2
    here = half * ((layers - 1 - l) % 2)
    dZ = deltas[here:here + n * fan_out[l]].reshape(n, fan_out[l])
    W, _ = weights(params, offsets, fan_in, fan_out, l)
    dW, db = weights(grad, offsets, fan_in, fan_out, l)
    if l > 0:
        A_prev = layer_output(outputs, n, fan_out, l - 1)
        below = half * ((layers - l) % 2)
        dZ_prev = deltas[below:below + n * fan_in[l]].reshape(n, fan_in[l])
        dense_backward(A_prev, W, dZ, dW, db, dZ_prev, acts[l - 1], True)
    else:
        dense_backward(X, W, dZ, dW, db, dZ, 0, False)
