"""What rank 0 records about a run: metrics.jsonl lines, phase timings, summary.json.

Phase times are measured on every rank and gathered at log steps, so the log shows both the
mean and the max over ranks: a max far above the mean is imbalance, and the allreduce time of
the fast ranks is then mostly waiting for the slow one.
"""

import json
import os
import time

import numpy as np

PHASES = ("data", "compute", "allreduce", "update")


class StepTimer:
    """Seconds spent in each phase of the current step."""

    def __init__(self):
        self.times = np.zeros(len(PHASES))
        self._t = time.perf_counter()

    def start(self):
        self._t = time.perf_counter()

    def lap(self, phase_index: int):
        now = time.perf_counter()
        self.times[phase_index] = now - self._t
        self._t = now


def gather_phase_stats(comm, per_step: np.ndarray) -> dict | None:
    """{phase: {"mean": s, "max": s}} over ranks, on rank 0 (None elsewhere)."""
    from mpi4py import MPI

    local = np.ascontiguousarray(per_step, dtype=np.float64)
    total, worst = np.zeros_like(local), np.zeros_like(local)
    comm.Reduce(local, total, op=MPI.SUM, root=0)
    comm.Reduce(local, worst, op=MPI.MAX, root=0)
    if comm.Get_rank() != 0:
        return None
    size = comm.Get_size()
    return {p: {"mean": float(total[i] / size), "max": float(worst[i])}
            for i, p in enumerate(PHASES)}


class MetricsLog:
    """Appends one JSON object per line and flushes, so a crashed run keeps its log."""

    def __init__(self, path):
        self.file = open(path, "a", buffering=1)

    def write(self, record: dict):
        self.file.write(json.dumps(record, sort_keys=True) + "\n")

    def close(self):
        self.file.close()


def write_json_atomic(path, obj):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
