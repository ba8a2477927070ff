"""Gradient sync: the one buffer every training step allreduces, and everything about it.

    [ gradient sum (n_params) | COUNT | LOSS | CORRECT | NONFINITE | STOP | READY (p) ]

Each rank's engine writes the SUM of its per-sample gradients into `grad`; `record` fills the
tail with the rank's sample count, loss sum, correct predictions and two flags: NONFINITE (this
rank's loss is NaN/Inf) and STOP (this rank received a stop signal, hpctrain.signals). One
allreduce sums all of it, so every rank then holds the global gradient sum, the global count to
divide by, the global loss and both flags, with no second collective. A summed 0/1 flag is > 0
exactly when some rank raised it (a MAX would say the same).

Every rank holds the same reduced bits, so every rank reaches the same verdict in `totals()`
and all stop at the same step without talking again.

READY has one slot per rank: rank r writes there the seconds since its previous allreduce
returned (update, logging, data, compute) and zero elsewhere, so after the sum every rank
knows how long each rank took to get to this allreduce. The ranks left the previous one
together, so `wait` = the slowest rank's time minus this rank's estimates how long this rank
waited for the slowest one inside the allreduce; the rest of its allreduce time moved bytes
(summary.json's allreduce split). No clocks are compared: each slot is one rank's own
duration.

Where the buffer lives is comm/step_buffer.py's choice: a private array summed in place, or
(`shm`, or `auto` choosing it) this rank's row of the node's shared window, summed without
copies. The engine writes into `local`/`tail`; the optimizer and `totals()` read `grad` and the
summed tail, which for the shared window are the reduce's result row, read in place.

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
import time
from dataclasses import dataclass

import numpy as np

from .comm.step_buffer import make_step_buffer

COUNT, LOSS, CORRECT, NONFINITE, STOP, READY = range(6)


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
    """The step buffer of one training run (collective to make).

    comm, algorithm: the communicator and the --allreduce name (hpctrain.comm).
    alloc(size): how to allocate the buffer (the CUDA engine's pinned memory); zeros otherwise.
    all_finite(array): the finiteness kernel for the verdict.
    faults: a FaultPlan; a rank's injected fault enters where its loss enters the buffer.
    """

    def __init__(self, comm, n_params: int, algorithm: str, all_finite, faults, alloc=None,
                 bucket_bytes: int = 0):
        self.comm, self.all_finite, self.faults = comm, all_finite, faults
        self.n_params, self.rank = n_params, comm.Get_rank()
        size = n_params + READY + comm.Get_size()
        self.buffer, self.facts = make_step_buffer(comm, algorithm, size, alloc,
                                                   zero_copy=not bucket_bytes)
        buf = self.buffer.mine
        self.local, self.tail = buf[:n_params], buf[n_params:]
        self.grad, self.summed_tail = self.local, self.tail  # until the first reduce
        self.overlap = _Overlap(comm, self.buffer.allreduce, buf, bucket_bytes) \
            if bucket_bytes else None
        self.wait = float("nan")   # seconds this rank waited for the slowest, last step
        self._left = time.perf_counter()

    def record(self, step: int, count: int, loss: float, correct: int, stop: bool) -> None:
        """This rank's totals into the tail (after its gradient sum is in `local`)."""
        loss = self.faults.corrupt(step, loss, self.local)
        tail = self.tail
        tail[COUNT], tail[LOSS], tail[CORRECT] = count, loss, correct
        tail[NONFINITE] = 0.0 if math.isfinite(loss) else 1.0
        tail[STOP] = 1.0 if stop else 0.0
        tail[READY:] = 0.0
        tail[READY + self.rank] = time.perf_counter() - self._left

    def prepare(self) -> None:
        """One reduce of the zeroed buffer before the first step: the agreement, auto's first
        use and the window's first touch happen here, not in a measured step."""
        self.tail[:] = 0.0
        if self.overlap is not None:
            self.overlap.wait()
        else:
            self.buffer.reduce()
        self._left = time.perf_counter()

    def reduce(self) -> None:
        """Sum the whole buffer over the ranks (in place, or into the window's result row)."""
        self._summed(self.buffer.reduce())

    def _summed(self, summed: np.ndarray) -> None:
        self._left = time.perf_counter()
        self.grad, self.summed_tail = summed[:self.n_params], summed[self.n_params:]
        ready = self.summed_tail[READY:]
        self.wait = float(ready.max() - ready[self.rank])

    def reduce_overlapped(self, step: int, model, params, X, y, stop: bool, timer) -> None:
        """Loss, backward and allreduce of a CPU step, the allreduce overlapping backward.
        The timer's compute lap covers the backward with the buckets sent meanwhile, its
        allreduce lap the wait for the buckets still in flight. (The tail goes first, at the
        end of the forward pass, so `wait` is then the spread of the forward passes.)"""
        loss, correct, stages = model.staged_loss_grad(params, X, y, self.local)
        self.record(step, len(X), loss, correct, stop)
        overlap = self.overlap
        overlap.send_ready(len(self.local))          # the tail is final: its bucket can go
        for ready_from in stages:
            overlap.send_ready(ready_from)
        timer.lap("compute")
        overlap.wait()
        self._summed(self.buffer.mine)
        timer.lap("allreduce")

    def totals(self) -> StepTotals:
        """The reduced totals and the verdict: finite only if no rank flagged its loss and
        the summed loss and gradient are finite."""
        tail = self.summed_tail
        finite = (tail[NONFINITE] == 0 and math.isfinite(tail[LOSS])
                  and self.all_finite(self.grad))
        return StepTotals(float(tail[COUNT]), float(tail[LOSS]), float(tail[CORRECT]),
                          bool(finite), bool(tail[STOP] > 0))

    def close(self, collective: bool = True) -> None:
        """Stop the communication thread; free the buffer too when every rank is here."""
        if self.overlap is not None:
            self.overlap.close()
        if collective:
            self.buffer.close()


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
