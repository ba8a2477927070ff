"""Worker: the `shm` and `auto` allreduces on this many ranks, in this node layout.

Run as `mpiexec -n P python shm_allreduce.py SEED LAYOUT:SIZES[:CHUNK] ...`: for each layout
("real", or a HPCTRAIN_FAKE_NODES value like 2x2) the worker sets the variable (and
HPCTRAIN_SHM_CHUNK_BYTES to CHUNK, so that big messages go through many pipeline steps), makes
a new communicator (whose node split reads them) and checks that the job sees SIZES ranks per
node, then runs every case on that communicator. Every case sums fresh random
inputs (seeded by SEED, rank and case); rank 0 gathers every rank's input and result and
checks the result against a float64 NumPy sum (to the float rounding bound) and that every
rank holds the same bits. Rank 0 prints `ok CASES` or the failures, and every rank exits with
the same status. Last, bad settings must raise InputError on every rank.
"""

import os
import sys

import numpy as np
from mpi4py import MPI

from hpctrain.comm import auto, get_allreduce, shm, topology
from hpctrain.comm.checks import agree
from hpctrain.errors import InputError


class Cases:
    """Runs cases on one communicator and collects rank 0's failure messages."""

    def __init__(self, comm, seed):
        self.comm, self.seed = comm, seed
        self.count, self.failures = 0, []

    def fill(self, buf):
        """Fresh random inputs into buf; returns a copy of them."""
        self.count += 1
        rng = np.random.default_rng([self.seed, self.comm.Get_rank(), self.count])
        buf[...] = rng.standard_normal(buf.size).astype(buf.dtype)
        return buf.copy()

    def reduce(self, name, n, dtype, where=""):
        buf = np.empty(n, dtype=dtype)
        data = self.fill(buf)
        get_allreduce(name)(self.comm, buf)
        self.verify(data, buf, f"{name} n={n} {np.dtype(dtype).name}{where}")

    def verify(self, data, result, where):
        comm = self.comm
        inputs, results = comm.gather(data, root=0), comm.gather(result.tobytes(), root=0)
        if comm.Get_rank() != 0:
            return
        where = f"p={comm.Get_size()} {where}"
        if any(r != results[0] for r in results):
            self.failures.append(f"{where}: ranks hold different bits")
            return
        stacked = np.array(inputs, dtype=np.float64).reshape(comm.Get_size(), -1)
        reference = stacked.sum(axis=0)
        bound = comm.Get_size() * np.finfo(data.dtype).eps * np.abs(stacked).sum(axis=0)
        got = np.frombuffer(results[0], dtype=data.dtype).astype(np.float64)
        if got.shape != reference.shape or not np.all(np.abs(got - reference) <= bound):
            self.failures.append(f"{where}: wrong sum")

    def expect(self, condition, message):
        if not condition:
            self.failures.append(f"rank {self.comm.Get_rank()}: {message}")


def sizes_for(p):
    return sorted({0, 1, max(p - 1, 0), p + 1, 1001, 100_003})


def grid(cases):
    for name in ("shm", "auto"):
        for n in sizes_for(cases.comm.Get_size()):
            for dtype in (np.float32, np.float64):
                cases.reduce(name, n, dtype)


def private_shm(comm):
    """The shm state the registry uses for comm (its private duplicate)."""
    private, _ = agree(comm, np.empty(0, dtype=np.float32))
    return shm.ShmAllreduce.of(private)


def window_reuse(cases):
    """Growing and shrinking messages: results stay right, the window grows, never shrinks."""
    state, largest = private_shm(cases.comm), 0
    # The grid left rows of at least 100_003 float64: 120_001 float64 makes them grow.
    for n, dtype in ((10, np.float32), (5000, np.float64), (100, np.float32),
                     (120_001, np.float64), (7, np.float64), (70_000, np.float32),
                     (0, np.float32), (3, np.float32)):
        before = state.window
        cases.reduce("shm", n, dtype, " (window reuse)")
        largest = max(largest, n * np.dtype(dtype).itemsize)
        if state.topo.node.Get_size() > 1 and largest:
            cases.expect(state.window.row_bytes >= largest, f"window too small after n={n}")
            if before is not None and before.row_bytes >= n * np.dtype(dtype).itemsize:
                cases.expect(state.window is before, f"window reallocated for n={n}")


def shared_buffer(cases):
    """A gradient living in the window: reduced without a copy in (and, with sum_view, without
    a copy out), still valid after the window grew."""
    comm, state = cases.comm, private_shm(cases.comm)
    view = shm.buffer(comm, 12_345, np.float32)
    if state.topo.node.Get_size() > 1:
        cases.expect(np.shares_memory(view, state.window.bytes), "buffer() not in the window")
    for step in range(2):
        data = cases.fill(view)
        get_allreduce("shm")(comm, view)
        cases.verify(data, view, f"shm buffer() step {step}")
    data = cases.fill(view)
    total = shm.sum_view(comm, view)
    cases.verify(data, total, "shm sum_view()")
    cases.expect(not total.flags.writeable, "sum_view() is writable")
    if state.topo.node.Get_size() > 1:
        cases.expect(np.shares_memory(total, state.window.bytes), "sum_view() copied")
    # One element more than the rows hold: the window grows, the lent row must stay valid.
    lent = state.window
    # Every rank must pass the same length: the largest row of any node, plus one element.
    rows = comm.allreduce(0 if lent is None else lent.row_bytes // 4, op=MPI.MAX)
    cases.reduce("shm", rows + 1, np.float32, " (grows the window)")
    if lent is not None:
        cases.expect(state.window is not lent and lent in state.retired, "lent window freed")
    data = cases.fill(view)
    get_allreduce("shm")(comm, view)
    cases.verify(data, view, "shm buffer() after the window grew")


def freed_communicator(cases):
    """A communicator used by shm and auto, then freed: its windows go with it."""
    dup = cases.comm.Dup()
    sub = Cases(dup, cases.seed + 1)
    sub.reduce("shm", 5003, np.float64, " (on a duplicate)")
    cases.failures += sub.failures
    cases.count += sub.count
    dup.Free()


def auto_agrees_and_caches(cases, expected_sizes):
    """auto: the same choices on every rank; a new communicator finds them in the cache."""
    comm = cases.comm
    picked = auto.details()
    everyone = comm.allgather(picked)
    cases.expect(all(other == picked for other in everyone), f"auto choices differ: {everyone}")
    cases.expect(set(picked) >= {"<=4KiB", "<=512KiB"}, f"classes missing: {sorted(picked)}")
    if comm.Get_size() == 1:
        cases.expect(set(auto.choices().values()) == {"native"}, "one rank: expected native")
        return
    if comm.Get_rank() == 0:
        with open(auto.cache_path()) as f:
            text = f.read()
        cases.expect(f'\\"ranks_per_node\\": {list(expected_sizes)}' in text,
                     "cache key lacks the rank layout")
    dup = comm.Dup()
    sub = Cases(dup, cases.seed + 2)
    sub.reduce("auto", 100_003, np.float32, " (auto, cached)")
    cached = auto.details()["<=512KiB"]
    cases.expect(cached["source"] == "cached", f"not read from the cache: {cached}")
    cases.expect(cached["algorithm"] == picked["<=512KiB"]["algorithm"], "cache changed choice")
    cases.failures += sub.failures
    cases.count += sub.count
    dup.Free()


def layout(cases, expected_sizes):
    private, _ = agree(cases.comm, np.empty(0, dtype=np.float32))
    sizes = topology.of(private).node_sizes
    cases.expect(sizes == expected_sizes, f"node sizes {sizes}, expected {expected_sizes}")


def bad_settings(world):
    """A layout that does not fit the job, a chunk size that is not a number: InputError on
    every rank, nobody left waiting."""
    failures = []
    for variable, value in ((topology.FAKE_NODES_VAR, f"{world.Get_size() + 1},1"),
                            (shm.CHUNK_VAR, "lots")):
        os.environ[variable] = value
        comm, message = world.Dup(), None
        try:
            get_allreduce("shm")(comm, np.ones(5))
        except InputError as err:
            message = str(err) if getattr(err, "collective", False) else None
        comm.Free()
        del os.environ[variable]
        if message is None or variable not in message:
            failures.append(f"rank {world.Get_rank()}: {variable}={value} gave {message!r}")
    return failures


def set_variable(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def run_layout(world, seed, layout_name, expected_sizes, chunk):
    """Every case on a fresh communicator that sees the given (real or pretend) layout."""
    set_variable(topology.FAKE_NODES_VAR, None if layout_name == "real" else layout_name)
    set_variable(shm.CHUNK_VAR, chunk)
    comm = world.Dup()  # new communicator: its node split reads the variables again
    cases = Cases(comm, seed)
    layout(cases, expected_sizes)
    grid(cases)
    window_reuse(cases)
    shared_buffer(cases)
    freed_communicator(cases)
    auto_agrees_and_caches(cases, expected_sizes)
    comm.Free()
    return [f"{layout_name}: {failure}" for failure in cases.failures], cases.count


def main():
    """argv: SEED LAYOUT:SIZES[:CHUNK_BYTES] ..., e.g. `7 real:4:4096 2x2:2,2 3+1:3,1`."""
    seed, world = int(sys.argv[1]), MPI.COMM_WORLD
    failures, count = [], 0
    for spec in sys.argv[2:]:
        layout_name, sizes, *chunk = spec.split(":")
        more, cases = run_layout(world, seed, layout_name,
                                 tuple(int(s) for s in sizes.split(",")),
                                 chunk[0] if chunk else None)
        failures, count = failures + more, count + cases
    failures += bad_settings(world)
    failures = world.gather(failures, root=0)
    status = 0
    if world.Get_rank() == 0:
        flat = [f for per_rank in failures for f in per_rank]
        print("\n".join(flat) if flat else f"ok {count}", flush=True)
        status = 1 if flat else 0
    sys.exit(world.bcast(status, root=0))


if __name__ == "__main__":
    main()
