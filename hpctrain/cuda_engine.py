"""The CUDA engine: the engine contract (docs/INTERFACES.md, "Engines") on one GPU.

Parameters, the gradient sum, optimizer state and the current batch live on the GPU. Per
step the host sees only what the training loop needs: the gradient sum for the allreduce
(one device-to-host copy into pinned memory, loss totals riding along in the same buffer)
and, after the allreduce, the reduced sum going back (one host-to-device copy), followed
by one fused update kernel that also zeroes the gradient for the next step.

Extensions (docs/INTERFACES.md): `prefetch(X, y)` names the next batch, copied in while the
current step computes; `host_buffer(size)` gives pinned memory for the allreduce buffer,
which the gradient then reaches without host-side copies; and on one GPU, where no
allreduce is needed, `loss_grad(X, y, None)` leaves the gradient on the GPU and
`step(None, scale, lr)` uses it there.

The optimizer's bookkeeping (settings, step count, the state dict format) is the CPU
optimizer's own (hpctrain.optim), so a checkpoint written by either engine loads in the
other; only its buffers live on the GPU.
"""

import numpy as np

from . import settings
from .batches import RowIndices
from .cuda_device import cuda_available, select_gpu, sm_count
from .errors import InputError
from .kernels import ACTIVATIONS, TASKS
from .model import MLP
from .optim import make_optimizer

__all__ = ["CudaEngine", "cuda_available"]     # cuda_available: where callers look for it

# The message of an impossible label, by task (as the CPU path words it).
_BAD_LABEL_MESSAGES = {"binary": "binary labels must be 0 or 1",
                       "multiclass": "class label outside [0, classes)"}


class CudaEngine:
    """One model's training state on one GPU.

    model: an hpctrain.model.MLP or its spec() dict. name/lr/momentum/weight_decay: as
    hpctrain.optim.make_optimizer. device_id: None picks local rank mod GPU count.
    precision: fp32 | tf32 | bf16, of the large products (cuBLAS); master weights and
    optimizer state stay float32. products: "blas" | "tiles" | None (blas where CuPy runs).
    fused/tile/shapes tune the kernels (kernels/cuda_network.py); the defaults choose.
    """

    def __init__(self, model, name="adam", lr=1e-3, momentum=0.0, weight_decay=0.0,
                 device_id=None, fused=None, tile=None, shapes=None, precision="fp32",
                 products=None):
        self.model = model if isinstance(model, MLP) else MLP.from_spec(model)
        self.optimizer = make_optimizer(name, self.model.n_params, lr=lr, momentum=momentum,
                                        weight_decay=weight_decay)
        ok, reason = cuda_available()
        if not ok:
            raise InputError(f"CUDA was asked for but cannot be used: {reason}")
        self.device_id = select_gpu(device_id)
        try:
            self._build(fused, tile, shapes, precision, products)
        except ValueError as err:       # a precision or product path this machine lacks
            raise InputError(f"--device cuda: {err}") from None

    def _build(self, fused, tile, shapes, precision, products) -> None:
        # numba-cuda is optional and slow to load: imported once cuda_available said yes.
        from .kernels.cuda_epilogue import count_nonfinite, element_config
        from .kernels.cuda_heads import BAD_GRADS, STATS
        from .kernels.cuda_launch import Copy, PreparedLaunch
        from .kernels.cuda_network import DeviceNetwork
        from .kernels.cuda_optim import DeviceUpdate, prepare_clear
        from .kernels.cuda_shim import cuda
        from .kernels.cuda_staging import BatchStager

        m, opt, n = self.model, self.optimizer, self.model.n_params
        self.n = n
        self.stream = cuda.stream()
        self.sm_count = sm_count()
        self.params = cuda.to_device(np.zeros(n, dtype=np.float32), stream=self.stream)
        self.grad = cuda.to_device(np.zeros(n + STATS, dtype=np.float32), stream=self.stream)
        self.buffer_names = list(opt.buffers)
        self.state = cuda.to_device(np.zeros((len(self.buffer_names), n), dtype=np.float32),
                                    stream=self.stream)
        self.grad_out = cuda.pinned_array(n + STATS, dtype=np.float32)
        self.grad_in = cuda.pinned_array(n, dtype=np.float32)
        self.grad_out_head = self.grad_out[:n]
        self.stats_out = self.grad_out[n:]
        # The step's copies and the clearing launch, prepared once (kernels/cuda_launch.py).
        self.copy_grad_out = Copy(self.grad, self.grad_out, "to_host", self.stream)
        self.copy_stats_out = Copy(self.grad[n:], self.stats_out, "to_host", self.stream)
        self.copy_grad_in = Copy(self.grad[:n], self.grad_in, "to_device", self.stream)
        self.clear_grad = prepare_clear(self.stream, self.grad, self.sm_count)
        self.check_grad = PreparedLaunch(count_nonfinite, *element_config(
            n, self.sm_count, self.stream), (self.grad, n, self.grad, n + BAD_GRADS))
        self.grad_finite = None      # the last on-GPU gradient's verdict (grad_host=None)
        self.network = DeviceNetwork(m.layer_shapes, ACTIVATIONS[m.activation],
                                     TASKS[m.task], self.stream, self.sm_count, fused, tile,
                                     shapes, products=products, precision=precision)
        self.network.bind(self.params, self.grad)
        self.update = DeviceUpdate(opt.name, self.stream, self.sm_count,
                                   momentum=getattr(opt, "momentum", 0.0),
                                   weight_decay=opt.weight_decay,
                                   beta1=getattr(opt, "beta1", 0.9),
                                   beta2=getattr(opt, "beta2", 0.999),
                                   eps=getattr(opt, "eps", 1e-8))
        self.update.bind(self.params, self.grad, self.state)
        self.pinned_buffers = []     # from host_buffer: gradients and batches copy directly
        self.batches = BatchStager(m.features, self.stream, self.is_pinned)
        self.held = None             # HeldRows on the GPU, from hold_rows
        self.grad_dirty = False      # the device gradient holds a sum not yet consumed
        self.grad_in_busy = False    # a copy from grad_in may still be reading it
        self.grad_in_copied = cuda.event()
        self.direct_copies = {}
        self.stream.synchronize()

    @property
    def facts(self) -> dict:
        """What summary.json records of the GPU path: products, precision, where rows are."""
        net = self.network
        return {"gpu": self.device_id, "products": net.products, "precision": net.precision,
                "fused_kernel": net.uses_fused(1), "rows_on_gpu": self.held is not None}

    # --- the engine contract -----------------------------------------------------------------

    def loss_grad(self, X, y, grad_host):
        """grad_host (n_params,) float32 = SUM of per-sample gradients; (loss sum, correct).

        grad_host=None keeps the sum on the GPU for `step(None, ...)` (one GPU, no
        allreduce): only the loss totals come back, and `grad_finite` says whether every
        entry of that sum is finite (counted on the GPU)."""
        held = isinstance(X, RowIndices)
        if not held:
            X, y = self._check_batch(X, y)
        if grad_host is not None:
            self._check_grad(grad_host)
        rows = len(X)
        if rows == 0:
            if grad_host is not None:
                grad_host[...] = 0
            return 0.0, 0
        if self.grad_dirty:
            self.clear_grad()
        batch = self.held.gather(X.index) if held else self.batches.put(X, y)
        self.network.loss_grad(batch, rows)
        self.grad_dirty = True
        direct = None if grad_host is None else self._direct(grad_host)
        if direct is not None:
            direct[0]()
            self.copy_stats_out()
        elif grad_host is None:
            self.check_grad()      # the verdict on a gradient the host never sees
            self.copy_stats_out()
        else:
            self.copy_grad_out()
        self.batches.stage_requested()     # the next batch's copy, while the GPU computes
        self.stream.synchronize()
        self.grad_in_busy = False
        if grad_host is not None and direct is None:
            grad_host[...] = self.grad_out_head
        loss, correct, bad_labels, bad_grads = (float(v) for v in self.stats_out)
        self.grad_finite = bad_grads == 0 if grad_host is None else None
        if bad_labels > 0:
            raise InputError(f"{_BAD_LABEL_MESSAGES[self.model.task]} (task {self.model.task})")
        return loss, int(correct)

    def step(self, grad_host, scale, lr) -> None:
        """One fused update with the reduced gradient SUM times scale (1 / global count).

        grad_host=None: use the sum the last loss_grad left on the GPU."""
        direct = None
        if grad_host is not None:
            self._check_grad(grad_host)
            direct = self._direct(grad_host)
            if direct is not None:
                direct[1]()
                self.grad_in_copied.record(self.stream)
            else:
                if self.grad_in_busy:
                    self.stream.synchronize()
                self.grad_in[...] = grad_host
                self.copy_grad_in()
                self.grad_in_busy = True
        self.optimizer.steps += 1
        self.update.apply(self.params, self.grad, self.state, scale, lr, self.optimizer.steps)
        self.grad_dirty = False
        if direct is not None:
            # The caller owns grad_host again once step returns: wait for the copy (not for
            # the update, which goes on while the caller prepares the next step).
            self.grad_in_copied.synchronize()

    def params_host(self) -> np.ndarray:
        """A host copy of the parameters (a new array)."""
        out = np.empty(self.n, dtype=np.float32)
        self.params.copy_to_host(out, stream=self.stream)
        self.stream.synchronize()
        return out

    def load(self, params, optimizer_state=None) -> None:
        """Take these parameters (and optimizer state, in hpctrain.optim's format)."""
        params = np.ascontiguousarray(params, dtype=np.float32)
        if params.shape != (self.n,):
            raise InputError(f"parameters have shape {params.shape}, the model has "
                             f"{self.n} parameters")
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)    # checks it; InputError
        self.stream.synchronize()
        self.params.copy_to_device(params, stream=self.stream)
        if optimizer_state is not None and self.buffer_names:
            stacked = np.stack([self.optimizer.buffers[k] for k in self.buffer_names])
            self.state.copy_to_device(stacked, stream=self.stream)
        self.stream.synchronize()

    def optimizer_state(self) -> dict:
        """{"name", "step", "buffers": {name: float32 array}}, as hpctrain.optim writes it."""
        if self.buffer_names:
            host = self.state.copy_to_host(stream=self.stream)
            self.stream.synchronize()
            for k, row in zip(self.buffer_names, host, strict=True):
                self.optimizer.buffers[k][:] = row
        return self.optimizer.state_dict()

    # --- extensions ------------------------------------------------------------------------

    def host_buffer(self, size: int) -> np.ndarray:
        """A zeroed float32 array of `size` values in pinned host memory, meant for the
        training loop's allreduce buffer and its gathered batches: a gradient view into it
        (contiguous, n_params long) goes to and from the GPU directly, without the two
        host-side copies through the engine's own pinned buffers that a pageable gradient
        buffer needs; a batch's inputs in it go over the bus without a host-side copy."""
        from .kernels.cuda_shim import cuda  # numba-cuda, loaded by _build already

        buf = cuda.pinned_array(size, dtype=np.float32)
        buf[...] = 0
        self.pinned_buffers.append(buf)
        return buf

    def _direct(self, grad_host):
        """(copy to grad_host, copy from grad_host), prepared once per address, when
        grad_host lies inside a buffer from host_buffer; None otherwise."""
        from .kernels.cuda_launch import Copy  # numba-cuda, loaded by _build already

        start = grad_host.ctypes.data
        found = self.direct_copies.get(start)
        if found is None:
            if not self.is_pinned(grad_host):
                return None
            found = (Copy(self.grad[:self.n], grad_host, "to_host", self.stream),
                     Copy(self.grad[:self.n], grad_host, "to_device", self.stream))
            self.direct_copies[start] = found
        return found

    def is_pinned(self, array: np.ndarray) -> bool:
        """True if `array` is C-contiguous and lies inside a buffer from host_buffer."""
        start = array.ctypes.data
        stop = start + array.nbytes
        return array.flags.c_contiguous and any(
            buf.ctypes.data <= start and stop <= buf.ctypes.data + buf.nbytes
            for buf in self.pinned_buffers)

    def hold_rows(self, X, y, share: float = 0.5) -> bool:
        """Copy all of this rank's rows to the GPU once, if they take at most `share` of
        its free memory; True if they are held. Batches are then passed to loss_grad as
        RowIndices into them (hpctrain.batches does so) and gathered on the GPU: no row
        goes over the bus again, and no host core spends the step copying rows."""
        from .kernels.cuda_resident import HeldRows, fits  # numba-cuda, loaded already

        X, y = self._check_batch(X, y)
        if settings.get("HPCTRAIN_GPU_ROWS") == "off" or not fits(X.nbytes + 4 * len(y), share):
            return False
        self.held = HeldRows(X, y, self.network, self.stream)
        return True

    def prefetch(self, X, y) -> None:
        """Name the next batch: the next loss_grad copies it to the GPU while its own
        kernels run, and the loss_grad after that, called with these same arrays, finds it
        there. So call it before the current step's loss_grad, and leave X and y unchanged
        until they are used."""
        X, y = self._check_batch(X, y)
        if X.shape[0]:
            self.batches.prefetch(X, y)

    # --- checks ------------------------------------------------------------------------------

    def _check_batch(self, X, y):
        X, y = np.asarray(X), np.asarray(y)
        features = self.model.features
        if X.ndim != 2 or X.shape[1] != features:
            raise InputError(f"expected input rows of {features} features, "
                             f"got an array of shape {X.shape}")
        if y.shape != (X.shape[0],):
            raise InputError(f"expected {X.shape[0]} labels, got an array of shape {y.shape}")
        return X, y

    def _check_grad(self, grad_host) -> None:
        if not isinstance(grad_host, np.ndarray) or grad_host.shape != (self.n,) \
                or grad_host.dtype != np.float32:
            raise ValueError(f"the gradient buffer must be a float32 array of {self.n} "
                             f"values")
