"""Which of its rows each rank trains on at each step.

Two plans, both deterministic from the seed and the epoch, so a resumed run sees the same
batches as an uninterrupted one:

- local: each rank shuffles its own rows; the global batch is the union of the local ones.
- global: one permutation of all rows; global batch k is the same set of rows whatever the rank
  count, and each rank computes the part of it that it holds. The trained model then does not
  depend on the rank count, to float rounding.

Steps per epoch are the same on every rank (the caller agrees on them collectively); a rank that
has run out of rows gets an empty batch and contributes a zero gradient with count 0.
"""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpochClock:
    """step -> (epoch, step within the epoch): where a run is in its passes over the data.

    A fresh run starts at step 0 of epoch 0. A resumed run starts its clock at the
    checkpoint's step, in the checkpoint's epoch, at the position in that epoch that matches
    the rows already seen: `--epochs E` then means E passes over the data whatever rank
    counts (and so steps per epoch) the run went through.
    """

    steps_per_epoch: int
    first_step: int = 0
    first_epoch: int = 0
    first_in_epoch: int = 0

    def at(self, step: int) -> tuple[int, int]:
        passed = step - self.first_step + self.first_in_epoch
        return self.first_epoch + passed // self.steps_per_epoch, passed % self.steps_per_epoch

    def end_of_epoch(self, epochs: int) -> int:
        """The step at which `epochs` passes over the data are complete."""
        return (self.first_step + (epochs - self.first_epoch) * self.steps_per_epoch
                - self.first_in_epoch)

    @classmethod
    def resumed(cls, steps_per_epoch: int, global_batch: int, checkpoint):
        """The clock of a run continuing from `checkpoint` (a fresh clock for None), and a
        note when its position could only be matched approximately."""
        if checkpoint is None:
            return cls(steps_per_epoch), None
        saved = checkpoint.rng
        epoch, k, note = checkpoint.epoch, checkpoint.step_in_epoch, None
        same_plan = (saved.get("steps_per_epoch", steps_per_epoch) == steps_per_epoch
                     and saved.get("global_batch", global_batch) == global_batch)
        if not same_plan:
            # Another rank count or global batch: continue the epoch after as many of the new
            # global batches as rows were already seen in it.
            seen = saved.get("samples_in_epoch", k * saved.get("global_batch", global_batch))
            k = min(round(seen / global_batch), steps_per_epoch)
            note = (f"the checkpoint was made with global batch {saved.get('global_batch')} "
                    f"and {saved.get('steps_per_epoch')} steps per epoch; epoch {epoch + 1} "
                    f"continues at its step {k + 1} of {steps_per_epoch} ({seen:.0f} of its "
                    f"rows were seen)")
        if k >= steps_per_epoch:
            epoch, k = epoch + 1, 0
        return cls(steps_per_epoch, checkpoint.step, epoch, k), note


def local_batch_size(global_batch: int, rank: int, size: int) -> int:
    """This rank's share of a global batch, balanced within one."""
    return global_batch // size + (1 if rank < global_batch % size else 0)


class LocalShuffle:
    def __init__(self, n_local: int, batch: int, seed: int, rank: int):
        self.n_local, self.batch, self.seed, self.rank = n_local, batch, seed, rank

    def steps_needed(self) -> int:
        """Steps this rank needs for one pass over its rows (agreed with MAX across ranks)."""
        return math.ceil(self.n_local / self.batch) if self.batch else 0

    def epoch(self, epoch: int):
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        order = rng.permutation(self.n_local)
        return lambda step: order[step * self.batch:(step + 1) * self.batch]


class GlobalShuffle:
    def __init__(self, n_total: int, global_batch: int, seed: int, start: int, stop: int):
        self.n_total, self.global_batch, self.seed = n_total, global_batch, seed
        self.start, self.stop = start, stop

    def steps_needed(self) -> int:
        return math.ceil(self.n_total / self.global_batch)

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's permutation of all rows: the same on every rank, for any rank count."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_total)

    def epoch(self, epoch: int):
        order = self.order(epoch)

        def rows(step):
            batch = order[step * self.global_batch:(step + 1) * self.global_batch]
            mine = batch[(batch >= self.start) & (batch < self.stop)]
            return mine - self.start

        return rows


class RowIndices:
    """A batch named by its rows' indices into the rows an engine holds (`hold_rows`, the
    CUDA engine): the engine gathers them itself, so the host copies nothing."""

    def __init__(self, index: np.ndarray):
        self.index = index

    def __len__(self) -> int:
        return len(self.index)


class BatchGather:
    """Copies the chosen rows into reused, C-contiguous batch buffers (no per-step allocation).

    With slots=2 successive calls alternate between two buffer pairs, so a batch handed to
    an engine for copying ahead stays intact while the next one is gathered. alloc(size):
    where the inputs go (a float32 array; the CUDA engine's pinned host_buffer, from which
    they cross the bus without another copy); default: ordinary memory.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, max_rows: int, slots: int = 1,
                 alloc=None):
        self.X, self.y = X, y
        self.alloc = alloc or (lambda size: np.empty(size, dtype=np.float32))
        self.slots = [self._alloc(max_rows) for _ in range(slots)]
        self.turn = 0

    def _alloc(self, rows: int):
        features = self.X.shape[1]
        return (self.alloc(rows * features).reshape(rows, features),
                np.empty((rows,), dtype=self.y.dtype))

    def __call__(self, rows: np.ndarray):
        n, i = len(rows), self.turn
        self.turn = (self.turn + 1) % len(self.slots)
        if n > len(self.slots[i][0]):  # a global batch can put more rows on one rank
            self.slots[i] = self._alloc(n)
        xb, yb = self.slots[i][0][:n], self.slots[i][1][:n]
        np.take(self.X, rows, axis=0, out=xb)
        np.take(self.y, rows, out=yb)
        return xb, yb


def make_plan(shuffle: str, n_total: int, n_local: int, row_start: int, global_batch: int,
              local_batch: int, seed: int, rank: int):
    """(the epoch plan, the most rows one of this rank's batches can hold)."""
    if shuffle == "global":
        plan = GlobalShuffle(n_total, global_batch, seed, row_start, row_start + n_local)
        return plan, global_batch
    return LocalShuffle(n_local, local_batch, seed, rank), max(local_batch, 1)


class Batches:
    """step -> this rank's batch (X, y), from the rank's rows and the epoch plan.

    An engine that holds the rank's rows itself (`hold_rows`, the CUDA engine where they
    fit) is handed RowIndices and y = None. Else an engine that copies ahead (`prefetch`) is
    also handed the next step's batch, gathered into the other of two buffers (from
    `alloc`: pinned memory for the CUDA engine), so its copy overlaps this step's compute.
    Plans of the current and the next epoch are kept.
    """

    def __init__(self, plan, X, y, max_rows: int, clock: EpochClock, total_steps: int,
                 prefetch=None, hold=None, alloc=None):
        self.plan, self.clock, self.total_steps = plan, clock, total_steps
        self.prefetch = prefetch
        if hold is not None and len(X) and hold(X, y):
            self.gather, self.prefetch = (lambda rows: (RowIndices(rows), None)), None
        else:
            self.gather = BatchGather(X, y, max_rows, slots=2 if prefetch else 1, alloc=alloc)
        self.epoch_plans, self.pending = {}, None

    def rows_for(self, step: int) -> np.ndarray:
        epoch, k = self.clock.at(step)
        if epoch not in self.epoch_plans:
            if len(self.epoch_plans) >= 2:
                self.epoch_plans.pop(min(self.epoch_plans))
            self.epoch_plans[epoch] = self.plan.epoch(epoch)
        return self.epoch_plans[epoch](k)

    def __call__(self, step: int):
        if self.prefetch is None:
            return self.gather(self.rows_for(step))
        batch = self.pending if self.pending is not None else self.gather(self.rows_for(step))
        self.pending = None
        if step + 1 < self.total_steps:
            self.pending = self.gather(self.rows_for(step + 1))
            self.prefetch(*self.pending)
        return batch
