"""The step buffer of `--reproducible`: micro-batch gradients summed exactly, for any P.

    [ fixed-point gradient sum (n_params) | COUNT | LOSS | CORRECT | NONFINITE | STOP |
      OVERFLOW | exponent histogram (fixed_point.SLOTS) ]             all float64

Per step every rank gets its micro-batches' rows (microbatches.py), computes each micro-batch's
gradient with the usual kernel into a float32 buffer and adds it, rounded to the step's fixed
point, into the float64 sum (fixed_point.py); the loss joins at the same scale. One allreduce
of any algorithm sums it EXACTLY, so every rank, for every rank count, holds the same bits;
`totals()` turns them back into the float32 gradient sum the update takes. When a rank's
gradient outgrew the scale, every rank sees the OVERFLOW count and the step is summed again at
the exact scale (the first step always: nothing is known yet).

The same interface as gradsync.GradientSync (`grad`, `totals`, `close`), so the loop and the
update do not change; `reduce_step` replaces gather + loss_grad + record + reduce.
"""

import math

import numpy as np

from . import fixed_point as fp
from .gradsync import CORRECT, COUNT, LOSS, NONFINITE, STOP, StepTotals

GROUP, GROUP_BYTES = 4, 64 << 20  # micro-batch gradients per fixed-point pass

OVERFLOW = STOP + 1
HISTOGRAM = OVERFLOW + 1
TAIL = HISTOGRAM + fp.SLOTS


class ExactGradientSync:
    """comm, allreduce, faults: as for GradientSync; micro: MicroBatches;
    exponent: the largest gradient exponent of the step before (a checkpoint's), or None."""

    overlap = None  # the buckets of --bucket-mb do not apply (config refuses them)
    wait = float("nan")  # the waiting/moving split of GradientSync is not measured here
    facts = {}

    def __init__(self, comm, n_params: int, allreduce, faults, micro,
                 exponent: int | None = None):
        self.comm, self.allreduce, self.faults = comm, allreduce, faults
        self.micro, self.exponent = micro, exponent
        self.buf = np.zeros(n_params + TAIL, dtype=np.float64)
        self.acc, self.tail = self.buf[:n_params], self.buf[n_params:]
        self.histogram = self.tail[HISTOGRAM:]
        self.grad = np.zeros(n_params, dtype=np.float32)   # the sum, for the update
        self.local = self.grad  # only the warm-up writes a gradient here (a scratch)
        # micro-batch gradients waiting for one fixed-point pass (up to GROUP, at most ~64 MB)
        group = max(1, min(GROUP, GROUP_BYTES // (4 * max(n_params, 1))))
        self.parts = np.zeros((group, n_params), dtype=np.float32)
        self.scale = 0
        self.resummed = 0  # steps summed twice: the first one, and where gradients outgrew

    def reduce_step(self, step: int, engine, stop: bool, timer, watch) -> None:
        """The step's exact global sums into the buffer (the data, compute and allreduce laps
        of `timer`; `watch`, the stall watchdog, told each phase)."""
        watch.at(step, "data")
        X, y, bounds, count = self.micro(step)
        timer.lap("data")
        # unknown (first step): a bound every gradient exceeds, so the exact one is measured
        bound = fp.EXP_MIN if self.exponent is None else min(self.exponent + fp.MARGIN,
                                                             fp.EXP_MAX)
        for attempt in (0, 1):
            self.scale = fp.scale_exponent(bound, count)
            watch.at(step, "compute")
            self._sum_micro_batches(step, engine, X, y, bounds, bound, stop, attempt)
            timer.lap("compute")
            watch.at(step, "allreduce")
            self.allreduce(self.comm, self.buf)
            timer.lap("allreduce")
            highest = fp.highest_slot(self.histogram)
            if self.tail[OVERFLOW] == 0 or highest is None:
                break
            bound = highest  # the exact largest exponent, the same on every rank
            self.resummed += 1
        if highest is not None:
            self.exponent = highest

    def _sum_micro_batches(self, step, engine, X, y, bounds, bound, stop, attempt) -> None:
        self.tail[:] = 0.0
        scale, tail, parts = 2.0 ** self.scale, self.tail, self.parts
        top, rows, correct, finite, waiting, first = 0.0, 0, 0, True, 0, True
        for i, (lo, hi) in enumerate(bounds):
            loss, right = engine.loss_grad(X[lo:hi], y[lo:hi], parts[waiting])
            if i == 0 and attempt == 0:  # an injected fault enters once, where a loss enters
                loss = self.faults.corrupt(step, loss, parts[waiting])
            waiting += 1
            if waiting == len(parts) or i + 1 == len(bounds):
                top = max(top, fp.quantize_add(self.acc, parts, waiting, scale, first))
                waiting, first = 0, False
            if math.isfinite(loss):
                top = max(top, abs(loss))
                tail[LOSS] += np.rint(loss * scale)
            else:
                finite = False
            rows += hi - lo
            correct += right
        if first:  # no micro-batch here: this rank adds zeros
            self.acc[:] = 0.0
        tail[COUNT], tail[CORRECT] = rows, correct
        tail[NONFINITE] = 0.0 if finite else 1.0
        tail[STOP] = 1.0 if stop else 0.0
        if bounds:
            mine = fp.exponent(top)
            self.histogram[mine - fp.EXP_MIN] = 1.0
            tail[OVERFLOW] = 1.0 if mine > bound else 0.0

    def totals(self) -> StepTotals:
        """The reduced totals, the float32 gradient sum in `grad`, and the verdict."""
        unscale = 2.0 ** -self.scale
        finite_grad = fp.dequantize(self.acc, unscale, self.grad)
        tail = self.tail
        loss = float(tail[LOSS]) * unscale
        finite = tail[NONFINITE] == 0 and math.isfinite(loss) and finite_grad
        return StepTotals(float(tail[COUNT]), loss, float(tail[CORRECT]), bool(finite),
                          bool(tail[STOP] > 0))

    def prepare(self) -> None:
        """Nothing to set up ahead: the first step measures its fixed-point scale anyway."""

    def close(self, collective: bool = True) -> None:
        self.micro.close()


def exact_validation(model, params, X, y, micro: int, comm) -> np.ndarray:
    """[loss sum, correct, rows] of the val split, the same bits for any P: each rank's rows
    start on a multiple of `micro` (data.ranks.aligned_slice), each chunk of `micro` rows is
    evaluated alone, and math.fsum adds every chunk's loss, correctly rounded in any order."""
    losses, correct = [], 0
    for lo in range(0, len(y), micro):
        loss, right = model.evaluate(params, X[lo:lo + micro], y[lo:lo + micro])
        losses.append(loss)
        correct += right
    everyone = comm.allgather(losses)  # once per epoch: a few floats per chunk
    total = math.fsum(loss for part in everyone for loss in part)
    return np.array([total, comm.allreduce(correct), comm.allreduce(len(y))], dtype=np.float64)
