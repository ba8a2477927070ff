"""Compute kernels, installed as `hpctrain.kernels` (never as a bare `kernels` module).

The integer codes below are the contract between the model and every kernel family
(CPU kernels here, CUDA kernels in the cuda* modules): the model turns names into codes once,
and the compiled code branches on small integers instead of strings. Importing this package
loads neither NumPy nor Numba; the kernel modules do.

CPU modules, one idea each:
    activations  bias + activation, fused; the activation's derivative
    dense        one dense layer forward and backward (matrix products through BLAS)
    heads        numerically stable losses from logits and their gradients
    mlp          the whole network's forward/backward in ONE compiled call
    optim        fused optimizer updates over the flat parameter buffer
"""

# Activation codes (hidden layers; the last layer is always linear and feeds a head).
IDENTITY = 0
RELU = 1
TANH = 2
SIGMOID = 3
ACTIVATIONS = {"identity": IDENTITY, "relu": RELU, "tanh": TANH, "sigmoid": SIGMOID}

# Head codes, one per dataset task.
BINARY = 0        # 1 logit, sigmoid + binary cross-entropy
MULTICLASS = 1    # C logits, softmax + cross-entropy
REGRESSION = 2    # 1 output, squared error (z - y)^2
TASKS = {"binary": BINARY, "multiclass": MULTICLASS, "regression": REGRESSION}
