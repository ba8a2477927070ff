"""The CPU engine: where parameters, gradients and optimizer state live for the host path.

The training loop talks only to an engine (docs/INTERFACES.md, "Engines"), so the CPU and the
CUDA path (hpctrain.cuda_engine) share one loop, one checkpoint format and one allreduce.
"""

import numpy as np

from .errors import InputError
from .optim import make_optimizer


class CpuEngine:
    """Parameters and optimizer state in host memory; Numba kernels do the work."""

    def __init__(self, model, optimizer, params: np.ndarray):
        self.model = model
        self.optimizer = optimizer
        self.params = np.ascontiguousarray(params, dtype=np.float32)

    def loss_grad(self, X, y, grad):
        """Write the SUM of per-sample gradients into `grad`; return (loss_sum, correct)."""
        return self.model.loss_grad(self.params, X, y, grad)

    def loss_grad_parts(self, X, y, grad) -> list:
        """Jobs compiling the pieces of loss_grad's kernel (hpctrain.node_compile)."""
        return self.model.loss_grad_parts(self.params, X, y, grad)

    def step(self, grad_sum, scale, lr):
        """One fused update with the reduced gradient sum times `scale` (1 / global count)."""
        self.optimizer.step(self.params, grad_sum, scale, lr)

    def params_host(self) -> np.ndarray:
        return self.params

    def load(self, params, optimizer_state=None):
        self.params[:] = params
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)

    def optimizer_state(self) -> dict:
        return self.optimizer.state_dict()


def make_engine(device: str, model, optimizer_args: dict, params: np.ndarray,
                precision: str = "fp32"):
    """The engine for `device` ("cpu" or "cuda"), holding `params` and a fresh optimizer;
    precision: of the GPU's large products (the CPU computes in fp32 only)."""
    if device == "cuda":
        from .cuda_engine import CudaEngine  # numba-cuda: loaded only for a GPU run

        engine = CudaEngine(model, precision=precision, **optimizer_args)
        engine.load(params)
        return engine
    if precision != "fp32":
        raise InputError(f"--precision {precision} is for the GPU's products (--device "
                         f"cuda); the CPU path computes in fp32")
    return CpuEngine(model, make_optimizer(n_params=model.n_params, **optimizer_args), params)

