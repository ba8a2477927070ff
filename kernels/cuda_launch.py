"""Kernel launches and copies with their Python-side preparation done once.

numba-cuda converts every argument of every launch from Python objects again, and checks
every copy again: tens of microseconds a call (docs/GPU.md has the figures). For the small
model, where a step is a few launches and copies around microseconds of GPU work, that
Python work IS the step time. Our buffers live as long as the engine, so the hot paths
bind them once:

  PreparedLaunch  a kernel with its arguments converted once, by the same numba-cuda
                  routine its dispatcher runs on every call, then launched through
                  cuda.core (which numba-cuda itself launches through); scalar arguments
                  may change per call (a learning rate).
  Copy            an asynchronous copy between two fixed buffers: one driver call.

Both rely on numba-cuda internals (the dispatcher's `_prepare_args`, the driver helpers);
where those are missing or refuse (another numba-cuda version), they fall back to
numba-cuda's ordinary calls: the same results, only slower. `fast` says which; the first
fallback of each kind in a process warns (RuntimeWarning), naming the error. The
simulator always takes the ordinary calls, silently: it has no internals to prepare.
"""

import warnings

import numpy as np

from .cuda_shim import simulated

_warned = set()     # the kinds of fallback already reported in this process


def _warn_once(kind: str, err: Exception, instead: str) -> None:
    """One RuntimeWarning per kind of fallback and process, not one per launch or step."""
    if kind in _warned:
        return
    _warned.add(kind)
    warnings.warn(f"hpctrain cannot prepare {kind} ahead ({type(err).__name__}: {err}); "
                  f"using {instead}: the same results, more time per step", RuntimeWarning,
                  stacklevel=3)


def _is_scalar(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating))


class PreparedLaunch:
    """dispatcher[grid, block, stream](*args), callable again and again.

    Calling it with values replaces the scalar arguments, in order; arrays stay bound.
    """

    def __init__(self, dispatcher, grid, block, stream, args):
        self.args = list(args)
        self.scalar_slots = [i for i, a in enumerate(self.args) if _is_scalar(a)]
        self.dispatcher, self.configuration = dispatcher, (grid, block, stream)
        self.fast = False
        if not simulated():
            try:
                self._prepare(dispatcher, grid, block, stream)
                self.fast = True
            except Exception as err:  # internals differ: keep the ordinary launch
                _warn_once("kernel launches", err, "numba-cuda's ordinary launches")

    def _configured(self):
        with warnings.catch_warnings():
            # numba-cuda warns about grids under 128 blocks; ours are small on purpose
            # (the fused kernel on a small batch: fewer blocks, fewer atomics).
            warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
            return self.dispatcher[self.configuration]

    def _prepare(self, dispatcher, grid, block, stream) -> None:
        from cuda.core import LaunchConfig, Stream, launch

        kernel = dispatcher.compile(tuple(dispatcher.typeof_pyval(a) for a in self.args))
        self.flat, self.scalar_at = [], []
        for slot, (t, value) in enumerate(zip(kernel.argument_types, self.args, strict=True)):
            converted = []
            kernel._prepare_args(t, value, stream, [], converted)
            if slot in self.scalar_slots:
                if len(converted) != 1:
                    raise TypeError(f"scalar argument of type {t} is not one value")
                # the ctypes type numba chose for it, to convert new values the same way
                self.scalar_at.append((len(self.flat), type(converted[0])))
            self.flat.extend(converted)
        self.function = kernel._codelibrary.get_cufunc().kernel
        self.config = LaunchConfig(grid=grid, block=block, shmem_size=0)
        self.stream = Stream.from_handle(stream.__cuda_stream__()[1])
        self.launch = launch

    def __call__(self, *scalars) -> None:
        if not self.fast:
            for slot, value in zip(self.scalar_slots, scalars, strict=False):
                self.args[slot] = value
            # Configured anew each time: the simulator's kernel[...] configures the kernel
            # object itself, so another launch of it may have changed its grid since.
            self._configured()(*self.args)
            return
        for (at, ctype), value in zip(self.scalar_at, scalars, strict=False):
            self.flat[at] = ctype(value)
        self.launch(self.stream, self.config, self.function, *self.flat)


class Copy:
    """An asynchronous copy of `nbytes` between a pinned host array and a device array,
    in the direction given ("to_device" or "to_host"), on one stream."""

    def __init__(self, device_array, host_array, direction, stream):
        self.device, self.host, self.stream = device_array, host_array, stream
        self.to_device = direction == "to_device"
        self.fast = False
        if not simulated():
            try:
                self._prepare()
                self.fast = True
            except Exception as err:  # internals differ: keep numba-cuda's copies
                _warn_once("copies", err, "numba-cuda's ordinary copies")

    def _prepare(self) -> None:
        from numba.cuda.cudadrv import driver as drv

        nbytes = self.host.nbytes
        if nbytes != self.device.nbytes or not self.host.flags.c_contiguous:
            raise ValueError("a fast copy needs two contiguous buffers of one size")
        stream = drv._stream_handle(self.stream)
        device = drv.device_pointer(self.device)
        if self.to_device:
            host = drv.host_pointer(self.host, readonly=True)
            self.call, self.call_args = drv.driver.cuMemcpyHtoDAsync, (device, host, nbytes,
                                                                       stream)
        else:
            host = drv.host_pointer(self.host)
            self.call, self.call_args = drv.driver.cuMemcpyDtoHAsync, (host, device, nbytes,
                                                                       stream)

    def __call__(self) -> None:
        if self.fast:
            self.call(*self.call_args)
        elif self.to_device:
            self.device.copy_to_device(self.host, stream=self.stream)
        else:
            self.device.copy_to_host(self.host, stream=self.stream)
