"""Gradient sync: the one buffer every training step allreduces, and everything about it.

    [ gradient sum (n_params) | COUNT | LOSS | CORRECT | NONFINITE | STOP ]

Each rank's engine writes the SUM of its per-sample gradients into `grad`; `record` fills the
tail with the rank's sample count, loss sum, correct predictions and two flags: NONFINITE (this
rank's loss is NaN/Inf) and STOP (this rank received a stop signal, hpctrain.signals). One
allreduce sums all of it, so every rank then holds the global gradient sum, the global count to
divide by, the global loss and both flags, with no second collective. A summed 0/1 flag is > 0
exactly when some rank raised it (a MAX would say the same).

Every rank holds the same reduced bits, so every rank reaches the same verdict in `totals()`
and all stop at the same step without talking again.

With `bucket_bytes > 0` the allreduce overlaps the backward pass: the buffer is cut into fixed
buckets from its end (backward finishes the last layer first, and the tail is known after the
forward pass); each bucket that lies wholly in finished layers is handed to one communication
thread, which reduces the buckets in order with the same algorithm. The Numba stages release
the GIL, so its MPI calls progress meanwhile. Bucket boundaries depend only on the buffer size
and bucket_bytes, never on timing: the result does not depend on how the two interleave.
"""

import math
import queue
import threading
from dataclasses import dataclass

import numpy as np

COUNT, LOSS, CORRECT, NONFINITE, STOP = range(5)
TAIL = 5


@dataclass(frozen=True)
class StepTotals:
    """The step's global sums, read from the reduced buffer (the same on every rank)."""

    count: float
    loss: float
    correct: float
    finite: bool
    stop: bool


def bucket_bounds(length: int, bucket_elems: int) -> list:
    """[(start, stop), ...] from the end of the buffer backwards, each <= bucket_elems."""
    bounds, stop = [], length
    while stop > 0:
        start = max(0, stop - bucket_elems)
        bounds.append((start, stop))
        stop = start
    return bounds


class GradientSync:
    """The step buffer of one training run.

    comm, allreduce: the communicator and a checked allreduce `fn(comm, buf)` (hpctrain.comm).
    alloc(size): how to allocate the buffer (the CUDA engine's pinned memory); zeros otherwise.
    all_finite(array): the finiteness kernel for the verdict.
    faults: a FaultPlan; a rank's injected fault enters where its loss enters the buffer.
    """

    def __init__(self, comm, n_params: int, allreduce, all_finite, faults, alloc=None,
                 bucket_bytes: int = 0):
        self.comm, self.allreduce, self.all_finite, self.faults = comm, allreduce, all_finite, \
            faults
        size = n_params + TAIL
        self.buf = alloc(size) if alloc is not None else np.zeros(size, dtype=np.float32)
        self.grad, self.tail = self.buf[:n_params], self.buf[n_params:]
        self.overlap = _Overlap(comm, allreduce, self.buf, bucket_bytes) if bucket_bytes else None

    def record(self, step: int, count: int, loss: float, correct: int, stop: bool) -> None:
        """This rank's totals into the tail (after its gradient sum is in `grad`)."""
        loss = self.faults.corrupt(step, loss, self.grad)
        tail = self.tail
        tail[COUNT], tail[LOSS], tail[CORRECT] = count, loss, correct
        tail[NONFINITE] = 0.0 if math.isfinite(loss) else 1.0
        tail[STOP] = 1.0 if stop else 0.0

    def reduce(self) -> None:
        """Sum the whole buffer over the ranks, in place."""
        self.allreduce(self.comm, self.buf)

    def reduce_overlapped(self, step: int, model, params, X, y, stop: bool, timer) -> None:
        """Loss, backward and allreduce of a CPU step, the allreduce overlapping backward.
        The timer's compute lap covers the backward with the buckets sent meanwhile, its
        allreduce lap the wait for the buckets still in flight."""
        loss, correct, stages = model.staged_loss_grad(params, X, y, self.grad)
        self.record(step, len(X), loss, correct, stop)
        overlap = self.overlap
        overlap.send_ready(len(self.grad))          # the tail is final: its bucket can go
        for ready_from in stages:
            overlap.send_ready(ready_from)
        timer.lap("compute")
        overlap.wait()
        timer.lap("allreduce")

    def totals(self) -> StepTotals:
        """The reduced totals and the verdict: finite only if no rank flagged its loss and
        the summed loss and gradient are finite."""
        tail = self.tail
        finite = (tail[NONFINITE] == 0 and math.isfinite(tail[LOSS])
                  and self.all_finite(self.grad))
        return StepTotals(float(tail[COUNT]), float(tail[LOSS]), float(tail[CORRECT]),
                          bool(finite), bool(tail[STOP] > 0))

    def close(self) -> None:
        if self.overlap is not None:
            self.overlap.close()


class _Overlap:
    """One communication thread reducing fixed buckets of the buffer, in order."""

    def __init__(self, comm, allreduce, buf: np.ndarray, bucket_bytes: int):
        self.comm, self.allreduce, self.buf = comm, allreduce, buf
        self.buckets = bucket_bounds(len(buf), max(1, bucket_bytes // buf.itemsize))
        self.sent = 0
        self.todo, self.done = queue.Queue(), queue.Queue()
        self.thread = threading.Thread(target=self._serve, name="hpctrain-allreduce",
                                       daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while (index := self.todo.get()) is not None:
            start, stop = self.buckets[index]
            try:
                self.allreduce(self.comm, self.buf[start:stop])
                self.done.put(None)
            except BaseException as err:  # handed to the main thread, which raises it
                self.done.put(err)

    def send_ready(self, ready_from: int) -> None:
        """Queue every bucket lying wholly at or above ready_from."""
        while self.sent < len(self.buckets) and self.buckets[self.sent][0] >= ready_from:
            self.todo.put(self.sent)
            self.sent += 1

    def wait(self) -> None:
        """Until every bucket of this step is reduced; re-raises the thread's failure."""
        self.send_ready(0)
        for _ in range(len(self.buckets)):
            err = self.done.get()
            if err is not None:
                raise err
        self.sent = 0

    def close(self) -> None:
        self.todo.put(None)
        self.thread.join()
