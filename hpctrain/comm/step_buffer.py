"""Where a training step's buffer lives, and which allreduce sums it.

    InPlaceBuffer      a private array summed in place by a registered allreduce: any
                       algorithm, the CUDA engine's pinned memory, --bucket-mb's buckets
    SharedStepBuffer   this rank's row of the node's shared window (shm_step.py): the engine
                       writes there and the optimizer reads the sum in place, no copies

`--allreduce shm` on the CPU puts the buffer in the window. `--allreduce auto` decides once,
before the first step (`make_step_buffer`): it times native, ring, doubling and the window on
this very buffer (or takes the choice that an earlier job or `hpctrain bench allreduce --tune`
cached for this layout), so its measuring is never part of a training step. summary.json says
what it picked, whether it measured, and how long choosing took.
"""

import time

import numpy as np

from . import auto, canonical_name
from .registry import ALGORITHMS, CANDIDATES
from .shm_step import SharedStepBuffer

WINDOW = "shm-window"                       # the zero-copy shm, as auto's candidates name it
STEP_CANDIDATES = ("doubling", "native", "ring", WINDOW)


class InPlaceBuffer:
    """A step buffer summed in place by `allreduce(comm, buf)` (a checked algorithm)."""

    def __init__(self, comm, size: int, allreduce, alloc=None):
        self.comm, self.allreduce = comm, allreduce
        self.mine = alloc(size) if alloc is not None else np.zeros(size, dtype=np.float32)

    def reduce(self) -> np.ndarray:
        self.allreduce(self.comm, self.mine)
        return self.mine

    def close(self) -> None:
        pass


def make_step_buffer(comm, name: str, size: int, alloc=None, zero_copy: bool = True):
    """(buffer, facts) for `--allreduce name` (collective). facts["reduction"] names what sums
    the buffer ("shm-window" for the zero-copy shm); for auto, also how it was chosen.

    zero_copy=False (the CUDA engine's pinned buffer, --bucket-mb's slices) keeps the buffer
    private: only an InPlaceBuffer can hand out pieces of itself or live in pinned memory.
    """
    name = canonical_name(name)
    if zero_copy and alloc is None and comm.Get_size() > 1:
        if name == "shm":
            return SharedStepBuffer(comm, size), {"reduction": WINDOW}
        if name == "auto":
            return choose_step_buffer(comm, size)
    return InPlaceBuffer(comm, size, ALGORITHMS[name], alloc), {"reduction": name}


def step_candidates(window: SharedStepBuffer) -> dict:
    """name -> fn(comm, buf) for auto.measure: the window's reduce ignores buf (its data is
    already in place, as a training step's is)."""
    candidates = {name: ALGORITHMS[name] for name in STEP_CANDIDATES if name != WINDOW}
    candidates[WINDOW] = lambda comm, buf: window.reduce()
    return candidates


def choose_step_buffer(comm, size: int, fresh: bool = False):
    """auto for a step buffer of `size` float32: measured (or cached) once, here."""
    started = time.perf_counter()
    window = SharedStepBuffer(comm, size)
    candidates = step_candidates(window)
    key = auto.layout_key(comm, sorted(candidates))
    size_class = auto.size_class(4 * size)
    name, source, seconds = auto.choose(comm, key, candidates, size_class, size, np.float32,
                                        fresh)
    if name == WINDOW:
        buffer = window
    else:
        window.close()
        buffer = InPlaceBuffer(comm, size, ALGORITHMS[name])
    took = time.perf_counter() - started
    auto.record(size_class, name, source, seconds, choose_s=took)
    return buffer, {"reduction": name, "source": source, "choose_s": took}


def tune(comm, sizes: list[int]) -> list[dict]:
    """Measure auto's choice afresh for each size (float32 elements), for both the general
    candidates and a training step's, and cache them (collective): what `hpctrain bench
    allreduce --tune` runs once per machine and layout, so that jobs find a warm cache."""
    private = comm.Dup()  # the general candidates are unchecked: never on the caller's comm
    general_key = auto.layout_key(private, sorted(CANDIDATES))
    rows = []
    try:
        for n in sizes:
            size_class = auto.size_class(4 * n)
            name, _, seconds = auto.choose(private, general_key, CANDIDATES, size_class, n,
                                           np.float32, fresh=True)
            rows.append({"elements": n, "use": "allreduce", "algorithm": name,
                         "seconds": seconds})
            buffer, facts = choose_step_buffer(comm, n, fresh=True)
            buffer.close()
            rows.append({"elements": n, "use": "step buffer", "algorithm": facts["reduction"],
                         "seconds": auto.details()[auto.class_label(size_class)]["seconds"]})
    finally:
        private.Free()
    return rows
