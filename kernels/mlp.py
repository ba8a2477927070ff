"""The whole network's forward and backward pass in ONE compiled call.

Small networks (32-64-1 on 256 rows) are dominated by per-call overhead, so the model never
calls the layer kernels from Python: it hands this module the flat parameter and gradient
buffers, the layer layout as int64 arrays, and preallocated workspaces, and each call runs
every layer, the head and the backward pass without allocating.

Layout (docs/INTERFACES.md): layer l has W_l (fan_in[l] x fan_out[l], row-major) starting at
offsets[l], followed by b_l (fan_out[l]). acts[l] is the activation code of layer l's output
(the last layer's code is ignored: it is linear and feeds the head).

Workspaces, float32 1-D, owned by the caller and sized for the batch n:
  outputs  n * sum(fan_out): every layer's output A_l, the last one being the logits
  deltas   2 * n * max(fan_out): two ping-pong buffers for dL/dZ going down the layers
"""

from numba import njit, typeof, types

from .dense import dense_backward, dense_forward
from .heads import head_loss_grad, head_output


@njit(cache=True, nogil=True, error_model="numpy")
def weights(params, offsets, fan_in, fan_out, l):
    """(W_l, b_l) as views into the flat buffer."""
    i, o, start = fan_in[l], fan_out[l], offsets[l]
    W = params[start:start + i * o].reshape(i, o)
    b = params[start + i * o:start + i * o + o]
    return W, b


@njit(cache=True, nogil=True, error_model="numpy")
def layer_output(outputs, n, fan_out, l):
    """Layer l's output block (n, fan_out[l]) inside the outputs workspace."""
    start = n * fan_out[:l].sum()
    return outputs[start:start + n * fan_out[l]].reshape(n, fan_out[l])


@njit(cache=True, nogil=True, error_model="numpy")
def forward(params, X, offsets, fan_in, fan_out, acts, outputs):
    """Run every layer; returns the logits (n, fan_out[-1]), a view into outputs."""
    n = X.shape[0]
    layers = fan_in.shape[0]
    A = X
    for l in range(layers):
        W, b = weights(params, offsets, fan_in, fan_out, l)
        Z = layer_output(outputs, n, fan_out, l)
        code = acts[l] if l < layers - 1 else 0  # the last layer is linear
        dense_forward(A, W, b, Z, code)
        A = Z
    return A


@njit(cache=True, nogil=True, error_model="numpy")
def backward_layer(l, params, X, grad, offsets, fan_in, fan_out, acts, outputs, deltas):
    """Layer l's dW and db into grad and, for l > 0, the delta of layer l-1.

    The two halves of `deltas` alternate: layer l reads its dL/dZ from one and writes the
    layer below's into the other (the top layer's, from the head, is in the first half).
    """
    n = X.shape[0]
    layers = fan_in.shape[0]
    half = deltas.shape[0] // 2
    here = half * ((layers - 1 - l) % 2)
    dZ = deltas[here:here + n * fan_out[l]].reshape(n, fan_out[l])
    W, _ = weights(params, offsets, fan_in, fan_out, l)
    dW, db = weights(grad, offsets, fan_in, fan_out, l)
    # One call with run-time values for both cases: constants here would be typed as
    # literals and compile dense_backward (and what it calls) a second time.
    A_prev, dZ_prev, prev_code = X, dZ, acts[0]
    if l > 0:
        A_prev = layer_output(outputs, n, fan_out, l - 1)
        below = half * ((layers - l) % 2)
        dZ_prev = deltas[below:below + n * fan_in[l]].reshape(n, fan_in[l])
        prev_code = acts[l - 1]
    dense_backward(A_prev, W, dZ, dW, db, dZ_prev, prev_code, l > 0)


@njit(cache=True, nogil=True, error_model="numpy")
def loss_grad(params, X, y, grad, offsets, fan_in, fan_out, acts, task, outputs, deltas):
    """grad = SUM over the n rows of per-sample gradients; returns (loss sum, right).

    n = 0 is allowed and gives a zero gradient (BLAS cannot take empty matrices).
    """
    n = X.shape[0]
    if n == 0:
        grad[:] = 0
        return 0.0, 0
    logits = forward(params, X, offsets, fan_in, fan_out, acts, outputs)
    last = fan_in.shape[0] - 1
    dZ = deltas[:n * fan_out[last]].reshape(n, fan_out[last])
    loss, correct = head_loss_grad(logits, y, dZ, task, True)
    for l in range(last, -1, -1):
        backward_layer(l, params, X, grad, offsets, fan_in, fan_out, acts, outputs, deltas)
    return loss, correct


@njit(cache=True, nogil=True, error_model="numpy")
def loss(params, X, y, offsets, fan_in, fan_out, acts, task, outputs):
    """(loss sum, right predictions) without gradients, for evaluation."""
    if X.shape[0] == 0:
        return 0.0, 0
    logits = forward(params, X, offsets, fan_in, fan_out, acts, outputs)
    return head_loss_grad(logits, y, logits, task, False)


@njit(cache=True, nogil=True, error_model="numpy")
def predict(params, X, offsets, fan_in, fan_out, acts, task, outputs, out):
    """out (n, fan_out[-1]) = the head's prediction (probabilities, or values)."""
    if X.shape[0] == 0:
        return
    logits = forward(params, X, offsets, fan_in, fan_out, acts, outputs)
    head_output(logits, task, out)


def part_jobs(params, X, y, grad, offsets, fan_in, fan_out, acts, task, outputs, deltas):
    """Jobs that compile loss_grad's three large pieces for exactly the types loss_grad passes
    them (the same arguments as loss_grad, X with at least one row; outputs, deltas and grad
    are then undefined). Their compiles take most of loss_grad's: run first, each on its own
    rank (hpctrain.node_compile), they are loaded from Numba's cache when loss_grad compiles,
    which is then left with its own body. backward_layer first: with two ranks, it and the
    head balance forward."""
    logits = types.Array(types.float32, 2, "C")  # what forward returns: a block of outputs
    head_types = (logits, typeof(y), logits, types.int64, types.literal(True))
    return [lambda: backward_layer(0, params, X, grad, offsets, fan_in, fan_out, acts, outputs,
                                   deltas),
            lambda: forward(params, X, offsets, fan_in, fan_out, acts, outputs),
            lambda: head_loss_grad.compile(head_types)]
