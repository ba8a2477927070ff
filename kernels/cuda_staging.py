"""Batches into the GPU: through pinned host memory, asynchronously, on a stream.

A batch travels as ONE flat float32 buffer: rows * features inputs, then the rows labels
as float32 (class indices are exact in float32), so each step is one host-to-device copy
and the kernels take one array. Copies from pinned (page-locked) memory run at the bus's
full speed and need not block the host.

Two slots: `prefetch` copies the NEXT batch into the slot the kernels are not reading, on
its own stream, while the current step computes; `put` then only makes the compute stream
wait for that copy. Without prefetch, `put` copies on the compute stream itself.

The copy into pinned memory is itself work for the host: 34 MB for a batch of 8192 rows of
1024 features, milliseconds, as long as the GPU's whole step. So a large prefetch runs on a
helper thread (NumPy releases the GIL while it copies), and the training loop goes on
launching the current step meanwhile. Small batches are copied at once: handing them to a
thread would cost more than the copy.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .cuda_launch import Copy
from .cuda_shim import cuda


class _Slot:
    def __init__(self):
        self.capacity = 0
        self.pinned = None
        self.device = None
        self.views = {}        # (floats, stream) -> (pinned view, prepared copy)
        self.copied = cuda.event()

    def fit(self, floats: int) -> None:
        if floats > self.capacity:
            self.capacity = max(floats, self.capacity + self.capacity // 2)
            self.pinned = cuda.pinned_array(self.capacity, dtype=np.float32)
            self.device = cuda.device_array(self.capacity, dtype=np.float32)
            self.views.clear()

    def view(self, floats: int, stream):
        """The pinned view of the first `floats` and the prepared copy of it to the device."""
        key = (floats, id(stream))
        found = self.views.get(key)
        if found is None:
            if len(self.views) >= 8:       # batch sizes come and go (an epoch's last batch)
                self.views.clear()
            host = self.pinned[:floats]
            found = (host, Copy(self.device[:floats], host, "to_device", stream))
            self.views[key] = found
        return found


THREAD_BYTES = 1 << 20        # prefetches at least this large go to the helper thread


class _Pending:
    """A prefetch in flight: for which arrays, into which slot, and how to wait for it."""

    def __init__(self, X, y, index, slot, future):
        self.X, self.y, self.index, self.slot, self.future = X, y, index, slot, future

    def finish(self) -> None:
        """Wait until the host-side copy is done and the device copy is queued."""
        if self.future is not None:
            self.future.result()


class BatchStager:
    def __init__(self, features: int, stream, device_id: int = 0, copy_stream=None):
        self.features = features
        self.stream = stream
        self.device_id = device_id
        self.copy_stream = copy_stream or cuda.stream()
        self.slots = [_Slot(), _Slot()]
        self.last = 0              # the slot the kernels read last
        self.pending = None        # a prefetched batch (_Pending)
        self.worker = None

    def _fill(self, slot: _Slot, X, y, stream) -> None:
        rows = X.shape[0]
        floats = rows * (self.features + 1)
        slot.fit(floats)
        host, copy = slot.view(floats, stream)
        host[:rows * self.features].reshape(rows, self.features)[...] = X
        host[rows * self.features:] = y
        copy()

    def put(self, X, y):
        """The device buffer holding (X, y), copied in or prefetched; X (rows, features)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.finish()
        if pending is not None and pending.X is X and pending.y is y:
            index = pending.index
            pending.slot.copied.wait(self.stream)
        else:
            if pending is not None:
                pending.slot.copied.synchronize()   # a prefetch nobody asked for
            index = self.last
            self._fill(self.slots[index], X, y, self.stream)
        self.last = index
        return self.slots[index].device

    def prefetch(self, X, y) -> None:
        """Start copying the next batch; the next `put(X, y)` with these same arrays uses it.

        The copy goes into the slot the current step is NOT reading, so it overlaps it.
        X and y must not change until that `put` (a large batch is read in the background).
        """
        if self.pending is not None:             # an unused prefetch may still use the slot
            self.pending.finish()
            self.pending.slot.copied.synchronize()
        index = 1 - self.last
        slot = self.slots[index]

        def stage():
            self._fill(slot, X, y, self.copy_stream)
            slot.copied.record(self.copy_stream)

        if X.nbytes < THREAD_BYTES:
            stage()
            self.pending = _Pending(X, y, index, slot, None)
            return
        if self.worker is None:
            # The helper thread needs this process's GPU context current to copy.
            self.worker = ThreadPoolExecutor(1, "hpctrain-prefetch", cuda.select_device,
                                             (self.device_id,))
        self.pending = _Pending(X, y, index, slot, self.worker.submit(stage))
