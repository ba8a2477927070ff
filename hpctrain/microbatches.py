"""Micro-batches whose rows do not depend on the rank count, and the exchange that feeds them.

`--reproducible` cuts global batch k (rows `order[k*G:(k+1)*G]` of the epoch's one global
permutation, batches.GlobalShuffle) into micro-batches of m consecutive positions: micro-batch
j is always the same rows in the same order, whatever P. Rank r computes micro-batches
[K*r//P, K*(r+1)//P) of the K in the batch (balanced within one), so it needs rows that other
ranks hold: one Alltoallv moves each row of the batch from the rank that read it to the rank
that computes it (a row already in place is copied by MPI itself). Every rank can work out the
whole exchange from the permutation and the ranks' row ranges, so no counts are sent, and the
next step's rows are posted (Ialltoallv) before this step computes, so they travel meanwhile.

Cost per step: G rows (features + label) moved once in all, (P-1)/P of them between ranks,
plus O(G) index arithmetic. With one rank nothing moves.
"""

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .batches import EpochClock, GlobalShuffle


@njit(cache=True, nogil=True)
def count_pairs(owner, dest, counts):
    """counts[a, b] = positions of the batch held by rank a and computed by rank b."""
    counts[:] = 0
    for i in range(owner.size):
        counts[owner[i], dest[i]] += 1


@njit(cache=True, nogil=True)
def gather_rows(X, y_bits, local, out):
    """out[i] = (X[local[i]], the label's bits): features and label in one float32 row."""
    features = X.shape[1]
    for i in range(local.size):
        out[i, :features] = X[local[i]]
        out[i, features] = y_bits[local[i]]


@njit(cache=True, nogil=True)
def scatter_arrivals(got, owner, ranks, X, y_bits):
    """Rows arrive grouped by sender, in batch order within each: put each at its position
    (owner: the sender of each of my positions) in X and y."""
    features = X.shape[1]
    first = np.zeros(ranks + 1, dtype=np.int64)  # where each sender's rows start in got
    for i in range(owner.size):
        first[owner[i] + 1] += 1
    for r in range(ranks):
        first[r + 1] += first[r]
    for i in range(owner.size):
        j = first[owner[i]]
        first[owner[i]] += 1
        X[i] = got[j, :features]
        y_bits[i] = got[j, features]


class MicroBatches:
    """step -> (X, y, bounds, count): this rank's micro-batches of the step's global batch,
    rows in batch order, [(lo, hi), ...] of each micro-batch within X, and the number of
    micro-batches of the whole batch (over all ranks)."""

    def __init__(self, comm, plan: GlobalShuffle, clock: EpochClock, X, y, micro: int):
        self.comm, self.plan, self.clock, self.micro = comm, plan, clock, micro
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        if y.dtype.itemsize != 4:  # labels travel as the bits of one more float32 column
            raise ValueError(f"labels of 4 bytes expected, got {y.dtype}")
        self.X, self.y = X, y
        self.y_bits = y.view(np.float32)
        # every rank's first row: who holds each row of a batch
        self.starts = np.array(comm.allgather(plan.start), dtype=np.int64)
        self.epochs = {}  # epoch -> (its permutation, the rank holding each of its rows)
        self.destinations = {}  # batch length -> the rank computing each position
        self.pending = None  # the next step's Exchange, posted during this step
        self.slab_X = np.empty((0, X.shape[1]), dtype=X.dtype)
        self.slab_y = np.empty(0, dtype=y.dtype)

    def epoch(self, epoch: int):
        found = self.epochs.get(epoch)
        if found is None:
            if len(self.epochs) >= 2:
                self.epochs.pop(min(self.epochs))
            order = self.plan.order(epoch)
            owner = np.searchsorted(self.starts, order, side="right") - 1
            found = self.epochs[epoch] = (order, owner)
        return found

    def count(self, rows: int) -> int:
        return math.ceil(rows / self.micro)

    def mine(self, rows: int) -> tuple[int, int]:
        """[first, last) of the micro-batches this rank computes."""
        k = self.count(rows)
        return k * self.rank // self.size, k * (self.rank + 1) // self.size

    def __call__(self, step: int):
        rows, owner, first, last = self._batch(step)
        lo, hi = first * self.micro, min(last * self.micro, len(rows))
        if len(self.slab_X) < hi - lo:
            self.slab_X = np.empty((hi - lo, self.X.shape[1]), dtype=self.X.dtype)
            self.slab_y = np.empty(hi - lo, dtype=self.y.dtype)
        X, y = self.slab_X[:hi - lo], self.slab_y[:hi - lo]
        if self.size == 1:
            np.take(self.X, rows - self.plan.start, axis=0, out=X)
            np.take(self.y, rows - self.plan.start, out=y)
        else:
            pending = self.pending if self.pending and self.pending.step == step \
                else self._post(step)
            pending.request.Wait()
            scatter_arrivals(pending.got, owner[lo:hi], self.size, X, y.view(np.float32))
            # the next step's rows travel while this one computes (its allreduce drives MPI)
            self.pending = self._post(step + 1)
        bounds = [(j * self.micro - lo, min((j + 1) * self.micro, len(rows)) - lo)
                  for j in range(first, last)]
        return X, y, bounds, self.count(len(rows))

    def close(self) -> None:
        """Complete the exchange posted for a step that was not taken (every rank posted
        it, so it completes)."""
        if self.pending is not None:
            self.pending.request.Wait()
            self.pending = None

    def _batch(self, step: int):
        """(global rows, their holders, [first, last) of my micro-batches) of a step."""
        epoch, k = self.clock.at(step)
        order, owner = self.epoch(epoch)
        g = self.plan.global_batch
        rows, owner = order[k * g:(k + 1) * g], owner[k * g:(k + 1) * g]
        return (rows, owner, *self.mine(len(rows)))

    def _destinations(self, rows: int) -> np.ndarray:
        found = self.destinations.get(rows)
        if found is None:
            k, p = self.count(rows), self.size
            firsts = np.arange(p) * k // p                  # each rank's first micro-batch
            found = np.searchsorted(firsts, np.arange(rows) // self.micro, side="right") - 1
            self.destinations[rows] = found
        return found

    def _post(self, step: int) -> "Exchange":
        """Start moving each row of the step's batch (features and label in one float32 row)
        from the rank that holds it to the rank that computes it: one Ialltoallv."""
        rows, owner, first, last = self._batch(step)
        lo, hi = first * self.micro, min(last * self.micro, len(rows))
        width = self.X.shape[1] + 1
        counts = np.zeros((self.size, self.size), dtype=np.int64)
        count_pairs(owner, self._destinations(len(rows)), counts)  # [from, to]
        # what I send: my rows in batch order, which is also by destination (dest grows)
        held = rows[owner == self.rank] - self.plan.start
        sent = np.empty((len(held), width), dtype=np.float32)
        gather_rows(self.X, self.y_bits, held, sent)
        got = np.empty((hi - lo, width), dtype=np.float32)
        send_counts, recv_counts = counts[self.rank] * width, counts[:, self.rank] * width
        request = self.comm.Ialltoallv([sent, (send_counts.tolist(), displs(send_counts))],
                                       [got, (recv_counts.tolist(), displs(recv_counts))])
        return Exchange(step, request, sent, got)


@dataclass
class Exchange:
    """One step's rows in flight: the buffers live until the request completes."""

    step: int
    request: object
    sent: np.ndarray
    got: np.ndarray


def displs(counts) -> list:
    return np.concatenate(([0], np.cumsum(counts)[:-1])).tolist()
