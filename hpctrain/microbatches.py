"""Micro-batches whose rows do not depend on the rank count, and the exchange that feeds them.

`--reproducible` cuts global batch k (rows `order[k*G:(k+1)*G]` of the epoch's one global
permutation, batches.GlobalShuffle) into micro-batches of m consecutive positions: micro-batch
j is always the same rows in the same order, whatever P. Rank r computes micro-batches
[K*r//P, K*(r+1)//P) of the K in the batch (balanced within one), so it needs rows that other
ranks hold: one Alltoallv moves each row of the batch from the rank that read it to the rank
that computes it (a row already in place is copied by MPI itself). Every rank can work out the
whole exchange from the permutation and the ranks' row ranges, so no counts are sent.

Cost per step: G rows (features + label) moved once in all, (P-1)/P of them between ranks,
plus O(G) index arithmetic. With one rank nothing moves.
"""

import math

import numpy as np

from .batches import EpochClock, GlobalShuffle


class MicroBatches:
    """step -> (X, y, bounds, count): this rank's micro-batches of the step's global batch,
    rows in batch order, [(lo, hi), ...] of each micro-batch within X, and the number of
    micro-batches of the whole batch (over all ranks)."""

    def __init__(self, comm, plan: GlobalShuffle, clock: EpochClock, X, y, micro: int):
        self.comm, self.plan, self.clock, self.micro = comm, plan, clock, micro
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.X, self.y = X, y
        # every rank's first row: who holds each row of a batch
        self.starts = np.array(comm.allgather(plan.start), dtype=np.int64)
        self.epoch_orders = {}
        self.slab_X = np.empty((0, X.shape[1]), dtype=X.dtype)
        self.slab_y = np.empty(0, dtype=y.dtype)

    def batch_rows(self, step: int) -> np.ndarray:
        """The global rows of the step's batch, in batch order (the same on every rank)."""
        epoch, k = self.clock.at(step)
        order = self.epoch_orders.get(epoch)
        if order is None:
            if len(self.epoch_orders) >= 2:
                self.epoch_orders.pop(min(self.epoch_orders))
            order = self.epoch_orders[epoch] = self.plan.order(epoch)
        g = self.plan.global_batch
        return order[k * g:(k + 1) * g]

    def count(self, rows: int) -> int:
        return math.ceil(rows / self.micro)

    def mine(self, rows: int) -> tuple[int, int]:
        """[first, last) of the micro-batches this rank computes."""
        k = self.count(rows)
        return k * self.rank // self.size, k * (self.rank + 1) // self.size

    def __call__(self, step: int):
        rows = self.batch_rows(step)
        first, last = self.mine(len(rows))
        lo, hi = first * self.micro, min(last * self.micro, len(rows))
        X, y = self._slab(hi - lo)
        if self.size == 1:
            np.take(self.X, rows - self.plan.start, axis=0, out=X)
            np.take(self.y, rows - self.plan.start, out=y)
        else:
            self._exchange(rows, lo, hi, X, y)
        bounds = [(j * self.micro - lo, min((j + 1) * self.micro, len(rows)) - lo)
                  for j in range(first, last)]
        return X, y, bounds, self.count(len(rows))

    def _slab(self, n: int):
        if len(self.slab_X) < n:
            self.slab_X = np.empty((n, self.X.shape[1]), dtype=self.X.dtype)
            self.slab_y = np.empty(n, dtype=self.y.dtype)
        return self.slab_X[:n], self.slab_y[:n]

    def _exchange(self, rows, lo: int, hi: int, X, y) -> None:
        """Each row of the batch from the rank that holds it to the rank that computes it."""
        p, micro = self.size, self.micro
        owner = np.searchsorted(self.starts, rows, side="right") - 1
        k = self.count(len(rows))
        firsts = np.arange(p) * k // p                    # each rank's first micro-batch
        dest = np.searchsorted(firsts, np.arange(len(rows)) // micro, side="right") - 1
        # what I send: my rows, in batch order, which is also by destination (dest grows)
        held = np.flatnonzero(owner == self.rank)
        send_rows = rows[held] - self.plan.start
        send_counts = np.bincount(dest[held], minlength=p)
        # what I receive: positions [lo, hi), arriving grouped by owner, in batch order
        arrival = np.argsort(owner[lo:hi], kind="stable")
        recv_counts = np.bincount(owner[lo:hi], minlength=p)
        sent_X = np.take(self.X, send_rows, axis=0)
        sent_y = np.take(self.y, send_rows)
        got_X = np.empty_like(X)
        got_y = np.empty_like(y)
        width = self.X.shape[1]
        self._alltoallv(sent_X, send_counts * width, got_X, recv_counts * width)
        self._alltoallv(sent_y, send_counts, got_y, recv_counts)
        X[arrival] = got_X
        y[arrival] = got_y

    def _alltoallv(self, send, send_counts, recv, recv_counts) -> None:
        send_displs = np.concatenate(([0], np.cumsum(send_counts)[:-1]))
        recv_displs = np.concatenate(([0], np.cumsum(recv_counts)[:-1]))
        self.comm.Alltoallv([send, (send_counts.tolist(), send_displs.tolist())],
                            [recv, (recv_counts.tolist(), recv_displs.tolist())])
