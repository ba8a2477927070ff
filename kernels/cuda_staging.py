"""Batches into the GPU: through pinned host memory, asynchronously, on a stream.

A batch travels as ONE flat float32 buffer: rows * features inputs, then the rows labels
as float32 (class indices are exact in float32), so each step is one host-to-device copy
and the kernels take one array. Copies from pinned (page-locked) memory run at the bus's
full speed and need not block the host.

Two slots: `prefetch` copies the NEXT batch into the slot the kernels are not reading, on
its own stream, while the current step computes; `put` then only makes the compute stream
wait for that copy. Without prefetch, `put` copies on the compute stream itself.
"""

import numpy as np

from .cuda_shim import cuda


class _Slot:
    def __init__(self):
        self.capacity = 0
        self.pinned = None
        self.device = None
        self.views = {}        # floats -> (pinned view, device view), made once per size

    def fit(self, floats: int) -> None:
        if floats > self.capacity:
            self.capacity = max(floats, self.capacity + self.capacity // 2)
            self.pinned = cuda.pinned_array(self.capacity, dtype=np.float32)
            self.device = cuda.device_array(self.capacity, dtype=np.float32)
            self.views.clear()

    def view(self, floats: int):
        found = self.views.get(floats)
        if found is None:
            found = (self.pinned[:floats], self.device[:floats])
            self.views[floats] = found
        return found


class BatchStager:
    def __init__(self, features: int, stream, copy_stream=None):
        self.features = features
        self.stream = stream
        self.copy_stream = copy_stream or cuda.stream()
        self.slots = [_Slot(), _Slot()]
        self.last = 0              # the slot the kernels read last
        self.pending = None        # (X, y, slot index, event) of a prefetched batch

    def _fill(self, slot: _Slot, X, y, stream) -> None:
        rows = X.shape[0]
        floats = rows * (self.features + 1)
        slot.fit(floats)
        host, device = slot.view(floats)
        host[:rows * self.features].reshape(rows, self.features)[...] = X
        host[rows * self.features:] = y
        device.copy_to_device(host, stream=stream)

    def put(self, X, y):
        """The device buffer holding (X, y), copied in or prefetched; X (rows, features)."""
        pending, self.pending = self.pending, None
        if pending is not None and pending[0] is X and pending[1] is y:
            _, _, index, event = pending
            event.wait(self.stream)
        else:
            if pending is not None:
                pending[3].synchronize()      # a prefetch nobody asked for: let it finish
            index = self.last
            self._fill(self.slots[index], X, y, self.stream)
        self.last = index
        return self.slots[index].device

    def prefetch(self, X, y) -> None:
        """Start copying the next batch; the next `put(X, y)` with these same arrays uses it.

        X and y are read now (into pinned memory), so the caller may reuse them at once.
        The copy goes into the slot the current step is NOT reading, so it overlaps it.
        """
        if self.pending is not None:
            self.pending[3].synchronize()     # an unused prefetch may still copy from there
        index = 1 - self.last
        self._fill(self.slots[index], X, y, self.copy_stream)
        event = cuda.event()
        event.record(self.copy_stream)
        self.pending = (X, y, index, event)
