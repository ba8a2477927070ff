"""The training step's buffer in the node's shared window: `shm` without its two copies.

`shm` (shm.py) copies each rank's buffer into a shared window and the sum back out; at 16
ranks on one node those copies are most of its time. A training step need not copy at all:
its engine can write the gradient straight into this rank's row of a window, and the optimizer
can read the sum where the reduce leaves it. `SharedStepBuffer` is that buffer:

    write      the engine writes this rank's sums into `mine`, its row of the window
    sync       barrier
    reduce     each rank sums its own 1/p slice of ALL rows, rows in rank order, into a
               result row, reading its peers' slices where they lie (shm.sum_rows)
    sync       barrier
    (nodes)    the node leaders ring the result row among themselves, then a barrier
    read       `reduce()` returns the result row: every rank reads the sum in place

One result row is enough: a rank reads a step's sum (the verdict, the update) before it
enters the next reduce, and no rank passes that reduce's first barrier, to write the row
again, before every rank has entered it. The input rows are safe the same way: peers read
them only between a step's two barriers, and a rank writes its own only after the second.

The sum is computed exactly as `shm` computes it (the same kernel, the same order), so every
rank holds identical bits. The length is agreed once, collectively, when the buffer is made,
and cannot change afterwards: unlike `shm`, no per-call stamp is needed.
"""

import numpy as np

from . import topology
from .agreement import agree
from .shm import PAGE, Window, inter_node, my_slice, round_up, sum_rows


class SharedStepBuffer:
    """A step buffer of n elements living in the shared window of comm's node (collective)."""

    def __init__(self, comm, n: int, dtype=np.float32):
        dtype = np.dtype(dtype)
        # One collective check that every rank asks for the same (n, dtype); the algorithm
        # then runs on the agreement's private duplicate, like every registered allreduce.
        private, _ = agree(comm, np.zeros(n, dtype=dtype))
        self.topo = topology.of(private)
        node = self.topo.node
        self.window = Window(node, round_up(max(n * dtype.itemsize, 1), PAGE), 0)
        self.rows, self.result = self.window.views(dtype)
        self.total = self.result[:n]
        self.mine = self.rows[node.Get_rank(), :n]
        self.mine[:] = 0  # shared memory comes uninitialised
        self.n = n
        self.lo, self.hi = my_slice(n, dtype.itemsize, node.Get_size(), node.Get_rank())

    def reduce(self) -> np.ndarray:
        """Sum every rank's `mine` (collective): the sum, to read (not write) until the next
        call."""
        window, total = self.window, self.total
        window.sync()
        sum_rows(self.rows, self.result, self.lo, self.hi)
        window.sync()
        if self.topo.nodes > 1:
            if self.topo.is_leader:
                inter_node(self.topo.leaders, total)
            window.sync()
        return total

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
        self.window = self.rows = self.result = self.total = self.mine = None
