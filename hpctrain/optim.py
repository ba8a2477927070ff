"""Optimizers over the flat parameter buffer: each step is ONE fused compiled pass.

`step(params, grad_sum, scale, lr)` takes the gradient SUM (after the allreduce) and
scale = 1 / global sample count, so the division happens inside the update pass; `lr` is
given every step so that schedules (warm-up, linear scaling) live in the training loop.
State is plain arrays, so checkpoints store it as datasets:
{"name": ..., "step": int, "buffers": {name: float32 array of n_params}}.
"""

import copy
import math

import numpy as np

from .errors import InputError

OPTIMIZERS = ("adam", "sgd")


def _kernels():
    from .kernels import optim

    return optim


class Optimizer:
    """Shared bookkeeping: the step counter, named state buffers, checks, state dicts."""

    name = ""

    def __init__(self, n_params, lr, weight_decay, buffer_names):
        self.n_params = n_params
        self.lr = lr
        self.weight_decay = weight_decay
        self.steps = 0
        self.buffers = {b: np.zeros(n_params, dtype=np.float32) for b in buffer_names}
        self._kernels = _kernels()

    def _check(self, params, grad_sum):
        shape = (self.n_params,)
        for what, a in (("parameter", params), ("gradient", grad_sum)):
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != np.float32 \
                    or not a.flags.c_contiguous:
                raise ValueError(f"the {what} buffer must be a contiguous float32 array "
                                 f"of {self.n_params} values")

    def compile_kernel(self) -> None:
        """Compile (or load) this optimizer's kernel, its state untouched: one step of a
        one-value copy (the types, not the sizes, pick the kernel's specialization)."""
        clone = copy.copy(self)
        clone.n_params, clone.steps = 1, 0
        clone.buffers = {name: np.zeros(1, dtype=np.float32) for name in self.buffers}
        clone.step(np.zeros(1, dtype=np.float32), np.zeros(1, dtype=np.float32), 1.0, 0.0)

    def state_dict(self) -> dict:
        """A copy of the state (safe to write out while training goes on)."""
        return {"name": self.name, "step": self.steps,
                "buffers": {k: v.copy() for k, v in self.buffers.items()}}

    def load_state_dict(self, state) -> None:
        """Take over a saved state; InputError if it belongs to another optimizer or model."""
        if not isinstance(state, dict) or state.get("name") != self.name:
            found = state.get("name") if isinstance(state, dict) else state
            raise InputError(f"optimizer state is for {found!r}, not {self.name!r}")
        step = state.get("step")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise InputError(f"optimizer state has a bad step count {step!r}")
        buffers = state.get("buffers")
        if not isinstance(buffers, dict) or set(buffers) != set(self.buffers):
            names = sorted(buffers) if isinstance(buffers, dict) else buffers
            raise InputError(f"{self.name} state needs buffers {sorted(self.buffers)}, "
                             f"got {names}")
        for k, v in buffers.items():
            v = np.asarray(v)
            if v.shape != (self.n_params,):
                raise InputError(f"{self.name} state buffer {k!r} has shape {v.shape}, "
                                 f"the model has {self.n_params} parameters")
        for k, v in buffers.items():
            self.buffers[k][:] = np.asarray(v, dtype=np.float32)
        self.steps = int(step)


class SGD(Optimizer):
    """v = mu v + g; theta -= lr v + lr wd theta (v = g when mu = 0: no buffer kept)."""

    name = "sgd"

    def __init__(self, n_params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(n_params, lr, weight_decay, ("velocity",) if momentum > 0 else ())
        self.momentum = momentum

    def step(self, params, grad_sum, scale, lr=None):
        self._check(params, grad_sum)
        lr = self.lr if lr is None else lr
        if self.momentum > 0:
            self._kernels.sgd_momentum_step(params, grad_sum, self.buffers["velocity"],
                                            scale, lr, self.momentum, self.weight_decay)
        else:
            self._kernels.sgd_step(params, grad_sum, scale, lr, self.weight_decay)
        self.steps += 1


class Adam(Optimizer):
    """Bias-corrected Adam with decoupled weight decay (theta -= lr wd theta)."""

    name = "adam"

    def __init__(self, n_params, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(n_params, lr, weight_decay, ("m", "v"))
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def step(self, params, grad_sum, scale, lr=None):
        self._check(params, grad_sum)
        lr = self.lr if lr is None else lr
        self.steps += 1
        self._kernels.adam_step(params, grad_sum, self.buffers["m"], self.buffers["v"],
                                scale, lr, self.beta1, self.beta2, self.eps,
                                self.weight_decay, self.steps)


def _number(value, what, low, high=math.inf, low_open=False, high_open=True):
    """value as a float inside [low, high) (or with the ends as asked); InputError if not."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    too_low = x <= low if low_open else x < low
    too_high = x >= high if high_open else x > high
    if not math.isfinite(x) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open or high == math.inf else "]"
        raise InputError(f"{what} must be in {left}{low}, {high}{right}, got {value!r}")
    return x


def make_optimizer(name, n_params, lr, momentum=0.0, weight_decay=0.0, beta1=0.9,
                   beta2=0.999, eps=1e-8):
    """An optimizer by name ("adam" or "sgd"); InputError for bad names or settings."""
    if name not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    if isinstance(n_params, bool) or not isinstance(n_params, (int, np.integer)) \
            or n_params < 0:
        raise InputError(f"the parameter count must be a non-negative integer, "
                         f"got {n_params!r}")
    lr = _number(lr, "the learning rate", 0.0, low_open=True)
    weight_decay = _number(weight_decay, "the weight decay", 0.0)
    if name == "sgd":
        momentum = _number(momentum, "the momentum", 0.0, 1.0)
        return SGD(int(n_params), lr, momentum, weight_decay)
    beta1 = _number(beta1, "beta1", 0.0, 1.0)
    beta2 = _number(beta2, "beta2", 0.0, 1.0)
    eps = _number(eps, "eps", 0.0, low_open=True)
    return Adam(int(n_params), lr, beta1, beta2, eps, weight_decay)
