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

Large messages go through these steps in chunks, pipelined (`_pipeline`): while a rank reduces
chunk k it copies chunk k+1 in and chunk k-1 out, one barrier per chunk, so the chunks in flight
stay in cache instead of making three round trips to memory (HPCTRAIN_SHM_CHUNK_BYTES).

Each rank also stamps its (length, dtype) into the window's header before the first barrier
and compares every stamp after it: a rank that alone passes another agreed length (no
collective per call could see it) would otherwise make the others sum a stale row. It aborts
the job instead (exit 2, `exact.abort_alone`); the leaders' ring checks its messages too.

Copies are the cost (docs/PERFORMANCE.md, "shm and auto"). The training step avoids them:
its buffer lives in a window of its own (shm_step.py), where the engine writes its gradient
and the optimizer reads the sum where the reduce left it.
"""

import numpy as np
from numba import njit

from ..errors import InputError
from . import topology
from .agreement import dtype_name
from .exact import abort_alone
from .job_settings import job_setting
from .local_add import add_into
from .ring import ring_allreduce

CHUNK_VAR = "HPCTRAIN_SHM_CHUNK_BYTES"
ALIGN = 64            # bytes: each rank's slice starts on a cache line
PAGE = 4096           # bytes: rows start on a page (first touch places it near its writer)
BLOCK = 2048          # elements summed per block: the block of the result stays in L1
MIN_CHUNKS = 4        # fewer chunks than this: one step, no pipeline


@njit(cache=True, nogil=True)
def first_other_stamp(stamps, stamp) -> int:
    """The first node rank whose stamp differs from `stamp`, or -1 when all agree."""
    for r in range(stamps.shape[0]):
        if stamps[r, 0] != stamp[0] or stamps[r, 1] != stamp[1]:
            return r
    return -1


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
            add_into(dst, rows[r, start:stop])


def chunk_bytes() -> int:
    """Bytes per row that one pipeline step handles: HPCTRAIN_SHM_CHUNK_BYTES, on a cache line.

    0, the default, turns the pipeline off (one step, two barriers, for any size): each extra
    barrier waits for the slowest rank, and the one-step shm won where it was measured
    (docs/PERFORMANCE.md).
    """
    return round_up(job_setting(CHUNK_VAR), ALIGN)


def round_up(x: int, unit: int) -> int:
    return -(-x // unit) * unit


def my_slice(n: int, itemsize: int, parts: int, part: int) -> tuple[int, int]:
    """[lo, hi) of the elements `part` reduces: equal chunks starting on a cache line."""
    chunk = round_up(-(-n // parts), max(1, ALIGN // itemsize))
    lo = min(part * chunk, n)
    return lo, min(lo + chunk, n)


class Plan:
    """Everything one (length, dtype) needs on one window, made once: no per-call set-up.

    A small message costs little more than its two barriers only if the call does not
    rebuild views and slice bounds every time.
    """

    __slots__ = ("rows", "result", "mine", "total", "whole", "chunks", "stamp")

    def __init__(self, rows, result, n: int, node_rank: int, chunk: int):
        self.rows, self.result = rows, result
        self.stamp = np.array([n, ord(rows.dtype.char)], dtype=np.int64)  # for the header
        self.mine = rows[node_rank, :n]   # this rank's input row
        self.total = result[:n]           # the sum, once the last step is done
        self.whole = pieces(n, n, rows.itemsize, rows.shape[0], node_rank)
        # A message of a few chunks fits the cache anyway: barriers would only cost.
        pipelined = chunk and n >= MIN_CHUNKS * chunk
        self.chunks = pieces(n, chunk, rows.itemsize, rows.shape[0], node_rank) \
            if pipelined else self.whole


def pieces(n: int, chunk: int, itemsize: int, parts: int, part: int) -> list:
    """(start, stop, lo, hi) per chunk of `chunk` elements: [lo, hi) is this rank's slice."""
    found = []
    for start in range(0, n, max(chunk, 1)):
        stop = min(start + chunk, n)
        lo, hi = my_slice(stop - start, itemsize, parts, part)
        found.append((start, stop, start + lo, start + hi))
    return found


class Window:
    """One shared window of a node: a header page with each rank's (length, dtype) stamp, then
    `ranks` input rows and one result row of `row_bytes` each."""

    def __init__(self, node, row_bytes: int, chunk_bytes: int):
        from mpi4py import MPI  # here, not at the top: importing the module starts no MPI

        self.node, self.row_bytes, self.chunk_bytes = node, row_bytes, chunk_bytes
        self.ranks, self.node_rank = node.Get_size(), node.Get_rank()
        rows = self.ranks + 1
        # Node rank 0 allocates everything, so the rows form one contiguous 2-D array.
        size = PAGE + rows * row_bytes if self.node_rank == 0 else 0
        self.win = MPI.Win.Allocate_shared(size, 1, comm=node)
        memory, _ = self.win.Shared_query(0)
        whole = np.frombuffer(memory, dtype=np.uint8)
        self.stamps = whole[:PAGE].view(np.int64)[:2 * self.ranks].reshape(self.ranks, 2)
        self.bytes = whole[PAGE:PAGE + rows * row_bytes]
        # A passive epoch for the window's lifetime: Sync() orders our loads and stores.
        self.win.Lock_all(MPI.MODE_NOCHECK)
        self._views, self._plans = {}, {}

    def views(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        """(input rows (ranks, m), result row (m,)) typed as `dtype`."""
        if dtype not in self._views:
            typed = self.bytes.view(dtype).reshape(self.ranks + 1, -1)
            self._views[dtype] = (typed[:self.ranks], typed[self.ranks])
        return self._views[dtype]

    def plan(self, n: int, dtype) -> Plan:
        key = (n, dtype)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 64:  # many sizes (a benchmark sweep): keep it bounded
                self._plans.clear()
            chunk = self.chunk_bytes // dtype.itemsize
            plan = self._plans[key] = Plan(*self.views(dtype), n, self.node_rank, chunk)
        return plan

    def sync(self) -> None:
        """Everyone's stores before the call are visible to everyone's loads after it."""
        self.win.Sync()
        self.node.Barrier()
        self.win.Sync()

    def close(self) -> None:
        if self.win is not None:
            self.win.Unlock_all()
            self.win.Free()
            self.win, self.bytes, self._views, self._plans = None, None, {}, {}
            self.stamps = None

    def stamp(self, plan: Plan) -> None:
        """Say this rank's (length, dtype), before the call's first barrier."""
        self.stamps[self.node_rank] = plan.stamp

    def check_stamps(self) -> None:
        """After the first barrier: abort the job unless every rank of the node stamped the
        same (length, dtype). The first rank that differs from node rank 0 reports it; the
        others go on to the next barrier, where the abort ends them."""
        if first_other_stamp(self.stamps, self.stamps[0]) != self.node_rank:
            return
        first, mine = self.stamps[0], self.stamps[self.node_rank]
        abort_alone(self.node, InputError(
            f"allreduce buffer lengths differ across ranks: this rank has {mine[0]} "
            f"{dtype_name(int(mine[1]))} elements, the first rank of its node {first[0]} "
            f"{dtype_name(int(first[1]))} (a rank passed another length than the others)"))


class ShmAllreduce:
    """Shared-window allreduce state of one communicator; get it with `ShmAllreduce.of(comm)`."""

    def __init__(self, comm):
        self.comm = comm
        self.topo = topology.of(comm)
        self.size = comm.Get_size()
        self.node_size = self.topo.node.Get_size()
        # A bad setting fails on every rank of every node; a good one is the node rank 0's,
        # since the ranks of a node must run the same pipeline steps.
        self.chunk_bytes = self.topo.node.bcast(chunk_bytes())
        self.window = None

    @classmethod
    def of(cls, comm) -> "ShmAllreduce":
        return _shm_state(comm)

    def _ensure(self, nbytes: int) -> Window:
        """A window with rows of at least `nbytes` (collective over the node when it grows)."""
        window = self.window
        if window is None or window.row_bytes < nbytes:
            # Grow at least twofold, so a sequence of growing messages reallocates rarely.
            old = 0 if window is None else window.row_bytes
            row_bytes = round_up(max(nbytes, 2 * old), PAGE)
            if window is not None:
                window.close()
            self.window = window = Window(self.topo.node, row_bytes, self.chunk_bytes)
        return window

    def __call__(self, buf: np.ndarray) -> None:
        """Sum buf over the communicator, in place."""
        if buf.size == 0 or self.size == 1:
            return
        if self.node_size == 1:
            inter_node(self.topo.leaders, buf)
            return
        window = self._ensure(buf.nbytes)
        plan = window.plan(buf.size, buf.dtype)
        if self.topo.nodes > 1:
            self._hierarchical(window, plan, buf)
        else:
            self._pipeline(window, plan, buf)

    def _pipeline(self, window: Window, plan: Plan, buf) -> None:
        """One node: chunk by chunk, each chunk's copy in, reduce and copy out overlapping.

        After the barrier that ends step k, every rank has copied chunk k in and reduced
        chunk k-1, so in step k+1 it may copy chunk k-1 out, reduce chunk k and copy chunk
        k+1 in: one barrier per chunk (plus one), and the chunks in flight stay in cache
        between the rank that writes them and the ranks that read them. Chunks live at
        their own offsets of the full rows, so nothing is overwritten that someone reads.
        """
        chunks, rows, result, mine = plan.chunks, plan.rows, plan.result, plan.mine
        start, stop = chunks[0][:2]
        np.copyto(mine[start:stop], buf[start:stop])
        window.stamp(plan)
        for k, (_, _, lo, hi) in enumerate(chunks):
            window.sync()
            if k:
                start, stop = chunks[k - 1][:2]
                np.copyto(buf[start:stop], result[start:stop])
            if not k:
                window.check_stamps()
            sum_rows(rows, result, lo, hi)
            if k + 1 < len(chunks):
                start, stop = chunks[k + 1][:2]
                np.copyto(mine[start:stop], buf[start:stop])
        window.sync()
        start, stop = chunks[-1][:2]
        np.copyto(buf[start:stop], result[start:stop])

    def _hierarchical(self, window: Window, plan: Plan, buf) -> None:
        """Several nodes: reduce the node's sum, ring it among the leaders, share it."""
        np.copyto(plan.mine, buf)
        window.stamp(plan)
        window.sync()
        window.check_stamps()
        _, _, lo, hi = plan.whole[0]
        sum_rows(plan.rows, plan.result, lo, hi)
        window.sync()
        if self.topo.is_leader:
            inter_node(self.topo.leaders, plan.total)
        window.sync()
        np.copyto(buf, plan.total)

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
        self.window = None


_shm_state = topology.cached("shm", ShmAllreduce)


def inter_node(leaders, buf: np.ndarray) -> None:
    """The leaders' step: `ring` among one rank per node (same bits on every leader)."""
    ring_allreduce(leaders, buf)


def shm_allreduce(comm, buf: np.ndarray) -> None:
    """Sum `buf` over `comm` in place through shared memory (identical bits on every rank).

    Unchecked, like every algorithm module: the registry's `get_allreduce("shm")` checks the
    buffer and runs this on its private duplicate of the caller's communicator.
    """
    ShmAllreduce.of(comm)(buf)
