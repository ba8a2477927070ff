"""`shm`: allreduce through an MPI-3 shared-memory window, hierarchical across nodes.

Inside a node, a ring over MPI point-to-point needs 2(p-1) steps, each a message (often a
copy into and out of the library's own shared buffers) and a wait for a neighbour. Here the
ranks of a node share one window instead and synchronise twice per call:

    copy in    each rank copies its buffer into its own row of the window (one memcpy)
    sync       barrier
    reduce     each rank sums its own 1/p slice of all rows, rows IN RANK ORDER, into the
               result row (a Numba kernel): every element is computed once, always in the
               same order, so every rank ends with identical bits, run after run
    sync       barrier
    copy out   every rank copies the whole result row into its buffer

Across nodes (real, or pretend ones from HPCTRAIN_FAKE_NODES, see topology.py) the node
leaders run `ring` on the node's result row between the two last steps, then a barrier.

The result row is separate from the input rows so that two barriers per call suffice: a rank
may already copy its next buffer in while slower ranks still copy the previous result out.

Copies are the cost (docs/PERFORMANCE.md, "shm and auto"), and two of them can go:
`buffer(comm, n, dtype)` hands out this rank's input row itself, so that a gradient computed
into it needs no copy in, and `sum_view(comm, buf)` returns the result row itself (read-only)
instead of copying it out.
"""

import numpy as np
from numba import njit

from . import topology
from .ring import ring_allreduce

ALIGN = 64            # bytes: each rank's slice starts on a cache line
PAGE = 4096           # bytes: rows start on a page (first touch places it near its writer)
BLOCK = 2048          # elements summed per block: the block of the result stays in L1


@njit(cache=True, nogil=True)
def _add(dst, src):
    for i in range(dst.size):
        dst[i] += src[i]


@njit(cache=True, nogil=True)
def sum_rows(rows, out, lo, hi):
    """out[lo:hi] = rows[0, lo:hi] + rows[1, lo:hi] + ... added in row order.

    Block by block, so the block of `out` stays in L1 while every row streams through once;
    the 1-D inner loop is what LLVM vectorises (it does not, indexing the 2-D array).
    """
    for start in range(lo, hi, BLOCK):
        stop = min(start + BLOCK, hi)
        dst = out[start:stop]
        dst[:] = rows[0, start:stop]
        for r in range(1, rows.shape[0]):
            _add(dst, rows[r, start:stop])


def _round_up(x: int, unit: int) -> int:
    return -(-x // unit) * unit


def my_slice(n: int, itemsize: int, parts: int, part: int) -> tuple[int, int]:
    """[lo, hi) of the elements `part` reduces: equal chunks starting on a cache line."""
    chunk = _round_up(-(-n // parts), max(1, ALIGN // itemsize))
    lo = min(part * chunk, n)
    return lo, min(lo + chunk, n)


class Window:
    """One shared window of a node: `ranks` input rows and one result row of `row_bytes` each."""

    def __init__(self, node, row_bytes: int):
        from mpi4py import MPI

        self.node, self.row_bytes = node, row_bytes
        ranks = node.Get_size()
        # Node rank 0 allocates everything, so the rows form one contiguous 2-D array.
        size = (ranks + 1) * row_bytes if node.Get_rank() == 0 else 0
        self.win = MPI.Win.Allocate_shared(size, 1, comm=node)
        memory, _ = self.win.Shared_query(0)
        self.bytes = np.frombuffer(memory, dtype=np.uint8)[: (ranks + 1) * row_bytes]
        # A passive epoch for the window's lifetime: Sync() orders our loads and stores.
        self.win.Lock_all(MPI.MODE_NOCHECK)
        self._views = {}

    def views(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        """(input rows (ranks, m), result row (m,)) typed as `dtype`."""
        if dtype not in self._views:
            ranks = self.node.Get_size()
            typed = self.bytes.view(dtype).reshape(ranks + 1, -1)
            self._views[dtype] = (typed[:ranks], typed[ranks])
        return self._views[dtype]

    def sync(self) -> None:
        """Everyone's stores before the call are visible to everyone's loads after it."""
        self.win.Sync()
        self.node.Barrier()
        self.win.Sync()

    def close(self) -> None:
        if self.win is not None:
            self.win.Unlock_all()
            self.win.Free()
            self.win, self.bytes, self._views = None, None, {}


class ShmAllreduce:
    """Shared-window allreduce state of one communicator; get it with `ShmAllreduce.of(comm)`."""

    def __init__(self, comm):
        self.comm = comm
        self.topo = topology.of(comm)
        self.window = None
        self.retired = []    # windows whose rows were handed out by buffer(): freed at close

    @classmethod
    def of(cls, comm) -> "ShmAllreduce":
        state = topology.comm_state(comm)
        if "shm" not in state:
            state["shm"] = cls(comm)
        return state["shm"]

    def _ensure(self, nbytes: int) -> Window:
        """A window with rows of at least `nbytes` (collective over the node when it grows)."""
        window = self.window
        if window is None or window.row_bytes < nbytes:
            # Grow at least twofold, so a sequence of growing messages reallocates rarely.
            old = 0 if window is None else window.row_bytes
            row_bytes = _round_up(max(nbytes, 2 * old), PAGE)
            if window is not None:
                if getattr(window, "lent", False):
                    self.retired.append(window)
                else:
                    window.close()
            self.window = window = Window(self.topo.node, row_bytes)
        return window

    def buffer(self, n: int, dtype=np.float32) -> np.ndarray:
        """This rank's input row as an (n,) array (collective): allreduce it with no copy in.

        The array stays valid for the life of the communicator, also if the window grows.
        """
        dtype = np.dtype(dtype)
        if self.topo.node.Get_size() == 1:
            return np.zeros(n, dtype=dtype)
        window = self._ensure(n * dtype.itemsize)
        window.lent = True
        rows, _ = window.views(dtype)
        return rows[self.topo.node.Get_rank(), :n]

    def __call__(self, buf: np.ndarray) -> None:
        """Sum buf over the communicator, in place."""
        total = self.sum_view(buf)
        if total.ctypes.data != buf.ctypes.data:
            np.copyto(buf, total)

    def sum_view(self, buf: np.ndarray) -> np.ndarray:
        """The sum of buf over the communicator, read-only, where it lies: in the window.

        Valid until this rank's next call on this communicator (the next call rewrites the
        result row only after every rank has entered it). buf afterwards holds either its
        input or the sum.
        """
        if buf.size == 0 or self.comm.Get_size() == 1:
            return _read_only(buf)
        topo = self.topo
        if topo.node.Get_size() == 1:
            inter_node(topo.leaders, buf)
            return _read_only(buf)
        window = self._ensure(buf.nbytes)
        rows, result = window.views(buf.dtype)
        me, n = topo.node.Get_rank(), buf.size
        mine = rows[me, :n]
        if mine.ctypes.data != buf.ctypes.data:
            np.copyto(mine, buf)
        window.sync()
        lo, hi = my_slice(n, buf.itemsize, topo.node.Get_size(), me)
        sum_rows(rows, result, lo, hi)
        window.sync()
        if topo.nodes > 1:
            if topo.is_leader:
                inter_node(topo.leaders, result[:n])
            window.sync()
        return _read_only(result[:n])

    def close(self) -> None:
        for window in [self.window, *self.retired]:
            if window is not None:
                window.close()
        self.window, self.retired = None, []


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def inter_node(leaders, buf: np.ndarray) -> None:
    """The leaders' step: `ring` among one rank per node (same bits on every leader)."""
    ring_allreduce(leaders, buf)


def shm_allreduce(comm, buf: np.ndarray) -> None:
    """Sum `buf` over `comm` in place through shared memory (identical bits on every rank).

    Unchecked, like every algorithm module: the registry's `get_allreduce("shm")` checks the
    buffer and runs this on its private duplicate of the caller's communicator.
    """
    ShmAllreduce.of(comm)(buf)


def buffer(comm, n: int, dtype=np.float32) -> np.ndarray:
    """An (n,) array living in the shared window (collective).

    `get_allreduce("shm")(comm, it)` then skips the copy in: compute the gradient into it.
    It lives on the registry's private communicator for `comm`, which is found (or made) by
    the same agreement the registry runs.
    """
    from .checks import agree

    private, _ = agree(comm, np.empty(n, dtype=dtype))
    return ShmAllreduce.of(private).buffer(n, dtype)


def sum_view(comm, buf: np.ndarray) -> np.ndarray:
    """The sum of buf over comm as a read-only array in shared memory: no copy out.

    With `buffer()` for buf, neither copy is left: only the reduction's own traffic. The
    array is valid until this rank's next shm call on comm (so not for overlapped buckets,
    whose next call comes while the previous sum is still wanted). buf afterwards holds its
    input or the sum. Checked and agreed like `get_allreduce("shm")`.
    """
    from .checks import agree

    private, flat = agree(comm, buf)
    return ShmAllreduce.of(private).sum_view(flat)
