"""Batches into the GPU: through pinned host memory, asynchronously, on copy streams.

A batch travels as ONE flat float32 buffer: rows * features inputs, then the rows labels
as float32 (class indices are exact in float32), so the kernels take one array. Copies
from pinned (page-locked) memory run at the bus's full speed and need not block the host.

`prefetch(X, y)` stages the NEXT batch while the current step computes; the `put(X, y)`
that asks for those same arrays then only makes the compute stream wait for the copy.
Called before the current step's loss_grad, the whole copy overlaps that step: three
slots, so that the slot being prefetched into is neither the one the current step reads
nor the one it was prefetched into; each slot has its own copy stream, so waiting for one
slot's copy never waits for another's.

The copy into pinned memory is itself host work: 34 MB for 8192 rows of 1024 features,
milliseconds, as long as the GPU's whole step. So a large batch is copied by helper
threads, in row ranges, each range sent on to the GPU as soon as it is in pinned memory
(NumPy releases the GIL while it copies). Small batches are copied at once: handing them
to threads would cost more than the copy.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .cuda_launch import Copy
from .cuda_shim import cuda

SLOTS = 3
THREAD_BYTES = 1 << 20        # batches at least this large are copied by helper threads
HELPERS = 4                   # helper threads, and row ranges a large batch is cut into


class _Slot:
    def __init__(self):
        self.capacity = 0
        self.pinned = None
        self.device = None
        self.stream = cuda.stream()
        self.copied = cuda.event()
        self.layouts = {}      # (rows, pieces) -> [(rows slice, pinned view, Copy)], labels

    def fit(self, floats: int) -> None:
        if floats > self.capacity:
            self.capacity = max(floats, self.capacity + self.capacity // 2)
            self.pinned = cuda.pinned_array(self.capacity, dtype=np.float32)
            self.device = cuda.device_array(self.capacity, dtype=np.float32)
            self.layouts.clear()

    def layout(self, rows: int, features: int, pieces: int):
        """Row ranges of X and the labels, each with its pinned view and prepared copy."""
        key = (rows, pieces)
        found = self.layouts.get(key)
        if found is None:
            if len(self.layouts) >= 8:     # batch sizes come and go (an epoch's last batch)
                self.layouts.clear()
            bounds = np.linspace(0, rows, pieces + 1).astype(int)
            ranges = []
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                if a == b:
                    continue
                host = self.pinned[a * features:b * features]
                ranges.append((slice(a, b), host.reshape(b - a, features),
                               Copy(self.device[a * features:b * features], host,
                                    "to_device", self.stream)))
            labels = self.pinned[rows * features:rows * (features + 1)]
            found = (ranges, labels, Copy(self.device[rows * features:rows * (features + 1)],
                                          labels, "to_device", self.stream))
            self.layouts[key] = found
        return found


class _Pending:
    """A prefetch in flight: for which arrays, into which slot, the helpers' work."""

    def __init__(self, X, y, index, futures):
        self.X, self.y, self.index, self.futures = X, y, index, futures

    def finish(self) -> None:
        """Wait until every range is in pinned memory and its device copy is queued."""
        for future in self.futures:
            future.result()


class BatchStager:
    def __init__(self, features: int, stream, device_id: int = 0):
        self.features = features
        self.stream = stream
        self.device_id = device_id
        self.slots = [_Slot() for _ in range(SLOTS)]
        self.last = 0              # the slot the kernels read last
        self.pending = []          # prefetched batches, oldest first
        self.helpers = None

    def put(self, X, y):
        """The device buffer holding (X, y), copied in or prefetched; X (rows, features)."""
        index = None
        while self.pending and index is None:
            pending = self.pending.pop(0)
            pending.finish()
            slot = self.slots[pending.index]
            if pending.X is X and pending.y is y:
                index = pending.index
                slot.copied.record(slot.stream)
                slot.copied.wait(self.stream)
            else:
                slot.stream.synchronize()          # a prefetch nobody asked for
        if index is None:
            for pending in self.pending:            # later prefetches: no longer in order
                pending.finish()
                self.slots[pending.index].stream.synchronize()
            self.pending.clear()
            index = (self.last + 1) % SLOTS
            self._copy_now(self.slots[index], X, y)
            self.slots[index].copied.record(self.slots[index].stream)
            self.slots[index].copied.wait(self.stream)
        self.last = index
        return self.slots[index].device

    def prefetch(self, X, y) -> None:
        """Start copying the next batch; the next `put(X, y)` with these same arrays uses it.

        X and y must not change until that `put` (a large batch is read in the background).
        Best called before the current step's loss_grad: the copy then overlaps it.
        """
        if len(self.pending) == SLOTS - 1:          # nobody consumes them: drop the oldest
            oldest = self.pending.pop(0)
            oldest.finish()
            self.slots[oldest.index].stream.synchronize()
        taken = {self.last} | {p.index for p in self.pending}
        index = next(i for i in range(SLOTS) if i not in taken)
        slot = self.slots[index]
        if X.nbytes < THREAD_BYTES:
            self._copy_now(slot, X, y)
            self.pending.append(_Pending(X, y, index, []))
            return
        if self.helpers is None:
            # Helper threads need this process's GPU context current to queue copies.
            self.helpers = ThreadPoolExecutor(HELPERS, "hpctrain-prefetch",
                                              cuda.select_device, (self.device_id,))
        rows = X.shape[0]
        slot.fit(rows * (self.features + 1))
        ranges, labels, copy_labels = slot.layout(rows, self.features, HELPERS)
        labels[...] = y
        copy_labels()
        futures = [self.helpers.submit(_copy_range, X, part, host, copy)
                   for part, host, copy in ranges]
        self.pending.append(_Pending(X, y, index, futures))

    def _copy_now(self, slot: _Slot, X, y) -> None:
        rows = X.shape[0]
        slot.fit(rows * (self.features + 1))
        ranges, labels, copy_labels = slot.layout(rows, self.features, 1)
        for part, host, copy in ranges:
            _copy_range(X, part, host, copy)
        labels[...] = y
        copy_labels()


def _copy_range(X, part, host, copy) -> None:
    host[...] = X[part]
    copy()
