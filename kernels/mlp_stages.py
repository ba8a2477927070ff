"""The network's step cut into stages, for overlapping the allreduce with the backward pass.

`kernels.mlp.loss_grad` runs everything in one call, which is fastest when nothing else has to
happen meanwhile. To reduce the last layers' gradients while earlier layers' backward still
runs, the caller needs control back between layers: `forward_head` (forward + loss + dL/dlogits)
then kernels.mlp's `backward_layer` once per layer, top down: the very calls that
kernels.mlp.loss_grad makes, so the results are bitwise the same.
All stages release the GIL, so a communication thread can progress while they run.
"""

from numba import njit

from .heads import head_loss_grad
from .mlp import backward_layer, forward

__all__ = ["forward_head", "backward_layer"]


@njit(cache=True, nogil=True, error_model="numpy")
def forward_head(params, X, y, offsets, fan_in, fan_out, acts, task, outputs, deltas):
    """Forward pass and head: (loss sum, right); dL/dlogits left in deltas' first half."""
    n = X.shape[0]
    logits = forward(params, X, offsets, fan_in, fan_out, acts, outputs)
    last = fan_in.shape[0] - 1
    dZ = deltas[:n * fan_out[last]].reshape(n, fan_out[last])
    return head_loss_grad(logits, y, dZ, task, True)
