"""Worker: the `shm` and `auto` allreduces on this many ranks, in this node layout.

Run as `mpiexec -n P python shm_allreduce.py SEED LAYOUT:SIZES[:CHUNK] ...`: for each layout
("real", or a HPCTRAIN_FAKE_NODES value like 2x2) the worker sets the variable (and
HPCTRAIN_SHM_CHUNK_BYTES to CHUNK, so that big messages go through many pipeline steps), makes
a new communicator (whose node split reads them) and checks that the job sees SIZES ranks per
node, then runs every case on that communicator. Every case is `hpctrain.comm.verify.check`:
fresh random inputs per rank (seeded by SEED, rank and case), compared with numpy.sum in
float64 of all inputs and checked for identical bits on every rank. Last, bad settings must
raise InputError on every rank.

Rank 0 prints what was verified, for the test to check:
    layout 2x2: nodes 2,2 cases 34 auto <=4KiB:native,<=8KiB:doubling,...
    bad settings: HPCTRAIN_FAKE_NODES HPCTRAIN_SHM_CHUNK_BYTES
then `ok CASES` or the failures; every rank exits with the same status.
"""

import os
import sys

import numpy as np
from mpi4py import MPI

from hpctrain.comm import auto, get_allreduce, shm, topology, verify
from hpctrain.comm.agreement import agree
from hpctrain.errors import InputError

BAD_SETTINGS = (topology.FAKE_NODES_VAR, shm.CHUNK_VAR)


class Cases:
    """Runs cases on one communicator and collects failure messages."""

    def __init__(self, comm, seed):
        self.comm, self.seed = comm, seed
        self.count, self.failures = 0, []

    def reduce(self, name, n, dtype, where=""):
        self.count += 1
        problem = verify.check(self.comm, get_allreduce(name), n, dtype, self.seed, self.count)
        if problem is not None and self.comm.Get_rank() == 0:  # the same on every rank
            self.failures.append(f"p={self.comm.Get_size()} {name} n={n} "
                                 f"{np.dtype(dtype).name}{where}: {problem}")

    def expect(self, condition, message):
        if not condition:
            self.failures.append(f"rank {self.comm.Get_rank()}: {message}")

    def absorb(self, other):
        self.failures += other.failures
        self.count += other.count


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


def freed_communicator(cases):
    """A communicator used by shm, then freed: its windows go with it."""
    dup = cases.comm.Dup()
    sub = Cases(dup, cases.seed + 1)
    sub.reduce("shm", 5003, np.float64, " (on a duplicate)")
    cases.absorb(sub)
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
    cases.absorb(sub)
    dup.Free()


def node_sizes(comm):
    private, _ = agree(comm, np.empty(0, dtype=np.float32))
    return topology.of(private).node_sizes


def bad_settings(world):
    """A layout that does not fit the job, a chunk size that is not a number: InputError on
    every rank, nobody left waiting. Returns (variables that raised right, failures)."""
    raised, failures = [], []
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
        if message is not None and variable in message:
            raised.append(variable)
        else:
            failures.append(f"rank {world.Get_rank()}: {variable}={value} gave {message!r}")
    return raised, failures


def set_variable(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def run_layout(world, seed, layout_name, expected_sizes, chunk):
    """Every case on a fresh communicator that sees the given (real or pretend) layout;
    returns (rank 0's summary line, failures, cases)."""
    set_variable(topology.FAKE_NODES_VAR, None if layout_name == "real" else layout_name)
    set_variable(shm.CHUNK_VAR, chunk)
    comm = world.Dup()  # new communicator: its node split reads the variables again
    cases = Cases(comm, seed)
    sizes = node_sizes(comm)
    cases.expect(sizes == expected_sizes, f"node sizes {sizes}, expected {expected_sizes}")
    grid(cases)
    window_reuse(cases)
    freed_communicator(cases)
    auto_agrees_and_caches(cases, expected_sizes)
    comm.Free()
    picked = ",".join(f"{label}:{name}" for label, name in auto.choices().items())
    line = (f"layout {layout_name}: nodes {','.join(map(str, sizes))} cases {cases.count} "
            f"auto {picked}")
    return line, [f"{layout_name}: {failure}" for failure in cases.failures], cases.count


def main():
    """argv: SEED LAYOUT:SIZES[:CHUNK_BYTES] ..., e.g. `7 real:4:4096 2x2:2,2 3+1:3,1`."""
    seed, world = int(sys.argv[1]), MPI.COMM_WORLD
    lines, failures, count = [], [], 0
    for spec in sys.argv[2:]:
        layout_name, sizes, *chunk = spec.split(":")
        line, more, cases = run_layout(world, seed, layout_name,
                                       tuple(int(s) for s in sizes.split(",")),
                                       chunk[0] if chunk else None)
        lines, failures, count = lines + [line], failures + more, count + cases
    raised, more = bad_settings(world)
    failures = world.gather(failures + more, root=0)
    status = 0
    if world.Get_rank() == 0:
        flat = [f for per_rank in failures for f in per_rank]
        lines.append(f"bad settings: {' '.join(raised)}")
        lines.append("\n".join(flat) if flat else f"ok {count}")
        print("\n".join(lines), flush=True)
        status = 1 if flat else 0
    sys.exit(world.bcast(status, root=0))


if __name__ == "__main__":
    main()
