"""Batches into the GPU: through pinned host memory, asynchronously, on copy streams.

A batch travels as ONE flat float32 buffer: rows * features inputs, then the rows labels
as float32 (class indices are exact in float32), so the kernels take one array. Copies
from pinned (page-locked) memory run at the bus's full speed and need not block the host.

Copying a batch is host work too: 34 MB into pinned memory for 8192 rows of 1024 features,
milliseconds, as long as the GPU's whole step on them. So the next batch is staged while
the GPU computes the current one: `prefetch(X, y)` only records the request, and
`stage_requested()`, which the engine calls right after queuing the current step's
kernels and before waiting for them, copies it into pinned memory and on to the GPU on
its own copy stream, in row ranges so that the transfer of one range overlaps the host
copy of the next. The `put(X, y)` that then asks for those same arrays only makes the
compute stream wait for that copy. (The main thread does the host copy: it is idle while
the GPU computes anyway, and helper threads measured slower, docs/GPU.md.) Inputs that are
in pinned memory already (`pinned(X)`: the engine's host_buffer, where the training loop
gathers its batches) skip the host copy: they go over the bus from where they lie.

Three slots, each with its own copy stream: the slot being staged into is never the one
the current step reads, nor one still waiting to be used; waiting for one slot's copy
never waits for another's.
"""

import numpy as np

from .cuda_launch import Copy
from .cuda_shim import cuda

SLOTS = 3
RANGE_BYTES = 4 << 20         # a large batch goes over in row ranges of about this size


class _Slot:
    def __init__(self):
        self.capacity = 0
        self.pinned = None
        self.device = None
        self.source = None     # pinned inputs being copied from where they lie
        self.stream = cuda.stream()
        self.copied = cuda.event()
        self.layouts = {}      # rows -> ([(rows slice, pinned view, Copy)], labels, Copy)
        self.direct = {}       # (address, rows) of pinned inputs -> their prepared Copy

    def fit(self, floats: int) -> None:
        if floats > self.capacity:
            self.capacity = max(floats, self.capacity + self.capacity // 2)
            self.pinned = cuda.pinned_array(self.capacity, dtype=np.float32)
            self.device = cuda.device_array(self.capacity, dtype=np.float32)
            self.layouts.clear()
            self.direct.clear()

    def direct_copy(self, X, floats: int) -> Copy:
        """The prepared copy of pinned inputs X into this slot (made once per address)."""
        key = (X.ctypes.data, floats)
        found = self.direct.get(key)
        if found is None:
            if len(self.direct) >= 16:     # the loop gathers into a few buffers only
                self.direct.clear()
            found = self.direct[key] = Copy(self.device[:floats], X.reshape(floats),
                                            "to_device", self.stream)
        return found

    def layout(self, rows: int, features: int):
        """Row ranges of X and the labels, each with its pinned view and prepared copy."""
        found = self.layouts.get(rows)
        if found is None:
            if len(self.layouts) >= 8:     # batch sizes come and go (an epoch's last batch)
                self.layouts.clear()
            pieces = max(1, min(rows, rows * features * 4 // RANGE_BYTES))
            bounds = np.linspace(0, rows, pieces + 1).astype(int)
            ranges = []
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                host = self.pinned[a * features:b * features]
                ranges.append((slice(a, b), host.reshape(b - a, features),
                               Copy(self.device[a * features:b * features], host,
                                    "to_device", self.stream)))
            labels = self.pinned[rows * features:rows * (features + 1)]
            found = (ranges, labels, Copy(self.device[rows * features:rows * (features + 1)],
                                          labels, "to_device", self.stream))
            self.layouts[rows] = found
        return found


class BatchStager:
    def __init__(self, features: int, stream, pinned=lambda X: False):
        self.features = features
        self.stream = stream
        self.pinned = pinned
        self.slots = [_Slot() for _ in range(SLOTS)]
        self.last = 0              # the slot the kernels read last
        self.requested = None      # (X, y) of the next batch, not yet copied
        self.pending = []          # (X, y, slot index) of copied batches, oldest first

    def prefetch(self, X, y) -> None:
        """Ask for (X, y) to be copied while the next step computes (stage_requested)."""
        self.requested = (X, y)

    def stage_requested(self) -> None:
        """Copy the requested batch into a free slot, asynchronously; call it while the
        GPU is busy, so that the host-side copy overlaps the GPU's work."""
        if self.requested is None:
            return
        X, y = self.requested
        self.requested = None
        if len(self.pending) == SLOTS - 1:          # nobody uses them: drop the oldest
            self._drop(self.pending.pop(0))
        taken = {self.last} | {index for _, _, index in self.pending}
        index = next(i for i in range(SLOTS) if i not in taken)
        self._copy(self.slots[index], X, y)
        self.pending.append((X, y, index))

    def put(self, X, y):
        """The device buffer holding (X, y), staged earlier or copied now; X (rows,
        features). The compute stream waits for the copy; the host does not."""
        if self.requested is not None and self.requested[0] is X and self.requested[1] is y:
            self.stage_requested()
        index = None
        while self.pending and index is None:
            entry = self.pending.pop(0)
            if entry[0] is X and entry[1] is y:
                index = entry[2]
            else:
                self._drop(entry)
        if index is None:
            for entry in self.pending:               # later ones: no longer in order
                self._drop(entry)
            self.pending.clear()
            index = (self.last + 1) % SLOTS
            self._copy(self.slots[index], X, y)
        slot = self.slots[index]
        slot.copied.record(slot.stream)
        slot.copied.wait(self.stream)
        self.last = index
        return slot.device

    def _drop(self, entry) -> None:
        """A staged batch nobody asked for: let its copy finish before the slot is reused."""
        self.slots[entry[2]].stream.synchronize()

    def _copy(self, slot: _Slot, X, y) -> None:
        rows = X.shape[0]
        slot.fit(rows * (self.features + 1))
        ranges, labels, copy_labels = slot.layout(rows, self.features)
        if X.dtype == np.float32 and self.pinned(X):
            slot.direct_copy(X, rows * self.features)()
            slot.source = X     # held until the slot is reused: its copy may be running
        else:
            for part, host, copy in ranges:
                host[...] = X[part]
                copy()      # this range's transfer overlaps the host copy of the next
        labels[...] = y
        copy_labels()
