"""Run results reduced to scaling points: one per (ranks, algorithm), with speedup and efficiency.

Repeats of one point are reduced to their median. Speedup is throughput(p) / throughput(1),
which is T(1)/T(p) for strong scaling (fixed global batch) and the scaled speedup for weak
scaling (fixed local batch); in both modes efficiency = speedup / p, and the ideal is
speedup = p, efficiency = 1.
throughput(1) is the median of ALL the one-rank runs, whatever their algorithm: one rank
does not communicate, so they ran the same program, and sharing the reference lets the
algorithms' curves be compared point by point. Without one-rank runs, each algorithm is
measured against its own smallest rank count p0: speedup = p0 * throughput(p) / throughput(p0).
In a ranks x threads layout sweep (--layouts) a point is (ranks, threads, algorithm) and
its speedup is scaling_layouts' (over the one-thread-per-rank layout).
"""

import statistics
from dataclasses import dataclass, field

from ..metrics import PHASES
from .scaling_layouts import layout_speedups

MODES = ("strong", "weak")


@dataclass
class Point:
    """The median over the repeats of one (ranks, algorithm) pair, and how it compares."""

    ranks: int | None
    algorithm: str
    repeats: int
    failed: int
    errors: list
    rates: list = field(default_factory=list)  # samples/s of each successful repeat
    samples_per_s: float | None = None
    samples_per_s_min: float | None = None
    samples_per_s_max: float | None = None
    step_time_s: float | None = None
    comm_fraction: float | None = None
    phases: dict = field(default_factory=dict)
    global_batch: int | None = None
    local_batch: int | float | None = None
    device: str | None = None
    speedup: float | None = None
    efficiency: float | None = None
    threads: int | None = None  # threads per rank: set only in a layout sweep

    @property
    def layout(self) -> str | None:
        """"8x2": 8 ranks x 2 threads, in a layout sweep; None otherwise."""
        if self.threads is None:
            return None
        return f"{self.ranks if self.ranks is not None else '?'}x{self.threads}"

    @property
    def status(self) -> str:
        if not self.failed:
            return "ok"
        first = self.errors[0] if self.errors else "failed"
        if self.failed == self.repeats:
            return f"FAILED: {first}"
        return f"{self.failed}/{self.repeats} repeats FAILED: {first}"


def aggregate(runs: list, by_layout: bool = False) -> list:
    """One Point per (ranks, algorithm), sorted by ranks then algorithm, with speedups;
    by_layout: one per (ranks, threads, algorithm), sorted by threads per rank."""
    groups: dict = {}
    for run in runs:
        key = (run.ranks, run.threads if by_layout else None, run.algorithm or "?")
        groups.setdefault(key, []).append(run)
    points = []
    for (ranks, threads, alg), group in groups.items():
        points.append(reduce_repeats(ranks, alg, group))
        points[-1].threads = threads
    # By rank count, the algorithms side by side in the order they were first seen.
    order = {alg: i for i, alg in enumerate(dict.fromkeys(alg for *_, alg in groups))}
    last = 1 << 30
    if by_layout:  # 16x1, 8x2, ... 1x16
        points.sort(key=lambda p: (p.threads or last, order[p.algorithm]))
        layout_speedups(points)
        return points
    points.sort(key=lambda p: (p.ranks if p.ranks is not None else last, order[p.algorithm]))
    add_speedups(points)
    return points


def reduce_repeats(ranks, algorithm, runs) -> Point:
    good = [r.summary for r in runs if r.ok]
    point = Point(ranks, algorithm, repeats=len(runs), failed=len(runs) - len(good),
                  errors=[r.error for r in runs if not r.ok])
    if not good:
        return point
    rates = [float(s["samples_per_s"]) for s in good]
    point.rates = rates
    point.samples_per_s = statistics.median(rates)
    point.samples_per_s_min, point.samples_per_s_max = min(rates), max(rates)
    point.step_time_s = _median(good, "step_time_s")
    point.comm_fraction = _median(good, "comm_fraction")
    point.phases = {ph: _median([s.get("phase_times_s") or {} for s in good], ph)
                    for ph in PHASES}
    point.global_batch = whole(good[0].get("global_batch"))
    # summary.json's local batch is global / ranks, a float even where it divides evenly
    point.local_batch = whole(good[0].get("local_batch"))
    point.device = good[0].get("device")
    return point


def whole(value):
    """A batch size as an int where it is a whole number (512.0 -> 512), else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _median(dicts, key):
    values = [float(d[key]) for d in dicts if d.get(key) is not None]
    return statistics.median(values) if values else None


def add_speedups(points) -> None:
    """speedup = thr(p) / thr(1), thr(1) pooled over the algorithms (see the module notes);
    without one-rank runs, p0 * thr(p) / thr(p0) per algorithm."""
    good = [p for p in points if p.samples_per_s and p.ranks]
    one_rank = [rate for p in good if p.ranks == 1 for rate in p.rates]
    shared = statistics.median(one_rank) if one_rank else None
    by_alg: dict = {}
    for p in good:
        by_alg.setdefault(p.algorithm, []).append(p)
    for group in by_alg.values():
        base = min(group, key=lambda p: p.ranks)
        base_ranks, base_rate = (1, shared) if shared else (base.ranks, base.samples_per_s)
        for p in group:
            p.speedup = base_ranks * p.samples_per_s / base_rate
            p.efficiency = p.speedup / p.ranks


def infer_mode(points) -> str:
    """weak when only the local batch is the same at every rank count, else strong.

    (When neither is fixed, `batch_warning` says so under the table.)
    """
    good = [p for p in points if p.samples_per_s]
    fixed_global = len({p.global_batch for p in good}) <= 1
    fixed_local = len({p.local_batch for p in good}) <= 1
    return "weak" if fixed_local and not fixed_global else "strong"


def batch_warning(points, mode) -> str | None:
    """A note when the runs do not hold fixed what the mode says they should."""
    good = [p for p in points if p.samples_per_s]
    key = "global_batch" if mode == "strong" else "local_batch"
    values = sorted({getattr(p, key) for p in good}, key=str)
    if len(values) > 1:
        return (f"note: {mode} scaling keeps the {key.replace('_', ' ')} fixed, "
                f"but these runs have {', '.join(map(str, values))}")
    return None
