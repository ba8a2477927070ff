"""`auto`: the fastest of its candidate allreduces for this job, per message-size class.

The first time a job reduces a message of a new size class (sizes rounded up to a power of
two bytes, everything up to 4 KiB being one class), every rank measures every candidate on a
scratch buffer of that very size, all ranks together, for a fraction of a second, timed the
way `hpctrain bench allreduce` times (`timing`): a call's time is the slowest rank's, an
algorithm's the median over its calls, so every rank holds the same numbers and picks the same
winner: the choice is identical on every rank by construction, never a per-rank guess.

The candidates are handed in by the registry (`make_auto(candidates)`), so this module imports
no algorithm and no registry. Choices are cached in `allreduce-auto.json` under hpctrain's user
cache directory (`runtime.cache_dir`), keyed by the machine and rank layout: the set of host
names, ranks per node (pretend nodes included), the MPI library and the candidate names. Rank 0
alone reads and writes the file and broadcasts what it found, so ranks on hosts with different
home directories still agree. `choices()` says what was picked, for summary.json.
"""

import functools
import json
import os
import time

import numpy as np

from .. import runtime
from ..node_compile import compile_on_node
from ..world import hosts, mpi_library
from . import timing, topology
from .job_settings import job_setting
from .kernel_jobs import kernel_jobs

SMALLEST_CLASS = 4096      # bytes: below this, latency is all there is
# Seconds of measurement per size class (all candidates together), plus one warm-up call each.
BUDGET_VAR = "HPCTRAIN_AUTO_BUDGET_S"
MIN_REPS, MAX_REPS = 3, 20
CACHE_VERSION = 1
SINGLE_RANK_CHOICE = "native"   # with one rank every algorithm returns at once

# size class -> {"algorithm", "source", "seconds"}, from every communicator that used auto
_picked = {}


def size_class(nbytes: int) -> int:
    """The class of a message: its size rounded up to a power of two (at least 4 KiB)."""
    return max(SMALLEST_CLASS, 1 << max(0, int(nbytes) - 1).bit_length())


def class_label(size: int) -> str:
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit:
            return f"<={size // unit}{name}"
    return f"<={size}B"


def cache_path() -> str:
    return runtime.cache_dir("allreduce-auto.json")


class AutoState:
    """What auto knows on one communicator: its cache key and the algorithm per size class."""

    def __init__(self, comm, candidates: dict):
        self.comm = comm
        self.algorithms = candidates  # name -> unchecked algorithm
        self.by_class = {}      # size class -> unchecked algorithm
        self.key = None         # the cache key, built collectively on the first measurement

    def pick(self, buf: np.ndarray):
        """The algorithm for buf's size class; collective the first time a class is seen."""
        size = size_class(buf.nbytes)
        algorithm = self.by_class.get(size)
        if algorithm is None:
            algorithm = self.by_class[size] = self._choose(size, buf)
        return algorithm

    def _choose(self, size: int, buf: np.ndarray):
        if self.comm.Get_size() == 1:
            return self._record(size, SINGLE_RANK_CHOICE, "single rank", {})
        if self.key is None:
            self.key = layout_key(self.comm, sorted(self.algorithms))
        name, source, seconds = choose(self.comm, self.key, self.algorithms, size, buf.size,
                                       buf.dtype)
        return self._record(size, name, source, seconds)

    def _record(self, size: int, name: str, source: str, seconds: dict):
        record(size, name, source, seconds)
        return self.algorithms[name]


def record(size: int, name: str, source: str, seconds: dict, **facts) -> None:
    """Remember a choice for choices()/details() (summary.json)."""
    _picked[size] = {"algorithm": name, "source": source, "seconds": seconds, **facts}


def choose(comm, key: str, algorithms: dict, size: int, n: int, dtype,
           fresh: bool = False) -> tuple[str, str, dict]:
    """(name, "cached" | "measured", seconds) for messages of `size` class (collective).

    The cached choice for this layout when there is one (unless `fresh`); else every
    candidate measured on n elements of dtype, the fastest stored in the cache.
    """
    label = class_label(size)
    cached = None if fresh else lookup(comm, key, label, algorithms)
    if cached is not None:
        return cached, "cached", {}
    seconds = measure(comm, algorithms, n, dtype)
    name = min(seconds, key=seconds.get)  # same numbers everywhere: same winner
    if comm.Get_rank() == 0:
        store(key, label, name, seconds)
    return name, "measured", seconds


def measure(comm, algorithms: dict, n: int, dtype) -> dict:
    """name -> seconds per call, every rank timing the same calls together (`timing`)."""
    compile_on_node(comm, kernel_jobs(comm, dtype, algorithms))  # once per node, not once per rank
    scratch = np.zeros(n, dtype=dtype)
    names = sorted(algorithms)
    # Agreed like every number that decides how many calls run: same calls on every rank.
    budget = float(timing.slowest(comm, [job_setting(BUDGET_VAR)])[0])
    per_algorithm = budget / len(names)
    seconds = {}
    for name in names:
        call = functools.partial(algorithms[name], comm, scratch)
        first = timing.median_time(comm, call, 1)  # warms up
        reps = int(np.clip(per_algorithm / max(first, 1e-9), MIN_REPS, MAX_REPS))
        seconds[name] = timing.median_time(comm, call, reps)
    return seconds


def layout_key(comm, names: list) -> str:
    """The cache key: host names, ranks per node, MPI library, candidates (collective)."""
    layout = {
        "hosts": hosts(comm),
        "ranks_per_node": list(topology.of(comm).node_sizes),
        "mpi": mpi_library(),
        "candidates": names,
    }
    return json.dumps(layout, sort_keys=True)


def _read_cache() -> dict:
    try:
        with open(cache_path()) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}  # no cache yet, or an unreadable one: measure again and rewrite it
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    return data


def lookup(comm, key: str, label: str, algorithms: dict) -> str | None:
    """The cached choice for this layout and class (rank 0 reads, everyone gets its answer)."""
    found = None
    if comm.Get_rank() == 0:
        entry = _read_cache().get("layouts", {}).get(key, {}).get(label)
        if isinstance(entry, dict) and entry.get("algorithm") in algorithms:
            found = entry["algorithm"]
    # Once per size class per job: the pickling bcast of a short string is fine here.
    return comm.bcast(found, root=0)


def store(key: str, label: str, name: str, seconds: dict) -> None:
    """Add one choice to the cache file (rank 0 only), replacing the file atomically."""
    data = _read_cache() or {"version": CACHE_VERSION, "layouts": {}}
    data.setdefault("layouts", {}).setdefault(key, {})[label] = {
        "algorithm": name, "seconds": seconds, "measured_at": time.time()}
    path = cache_path()
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only home only costs a new measurement next time


def make_auto(candidates: dict):
    """The `auto` allreduce over `candidates` (name -> unchecked algorithm), unchecked itself.

    Its state (cache key, choice per size class) hangs on each communicator it runs on, under
    a key naming the candidates.
    """
    candidates = dict(candidates)
    key = "auto:" + ",".join(sorted(candidates))
    state = topology.cached(key, functools.partial(AutoState, candidates=candidates))

    def auto_allreduce(comm, buf: np.ndarray) -> None:
        """Sum buf over comm in place with the candidate measured fastest for its size."""
        if buf.size == 0:
            return
        state(comm).pick(buf)(comm, buf)

    return auto_allreduce


def choices() -> dict:
    """What auto picked in this process: {size class label: algorithm name}."""
    return {class_label(size): picked["algorithm"] for size, picked in sorted(_picked.items())}


def details() -> dict:
    """Like choices(), with how each was found ("measured", "cached") and the timings."""
    return {class_label(size): dict(picked) for size, picked in sorted(_picked.items())}
