"""The pieces of a run's records: the phases of a step, their timer, interval sums, the log.

Light on purpose (NumPy only, no MPI): the benchmark reports read PHASES without starting MPI.
hpctrain.records puts them together into what rank 0 writes.
"""

import json
import time

import numpy as np

from .atomic import replacing, writing

PHASES = ("data", "compute", "allreduce", "update")
PHASE_INDEX = {name: i for i, name in enumerate(PHASES)}


class StepTimer:
    """Seconds spent in each phase of the current step, and when each phase ended (the
    perf_counter clock: --trace lays the same laps out on a timeline)."""

    def __init__(self):
        self.times = np.zeros(len(PHASES))
        self.ends = np.zeros(len(PHASES))
        self._t = self.began = time.perf_counter()

    def start(self):
        self._t = self.began = time.perf_counter()

    def lap(self, phase: str):
        now = time.perf_counter()
        self.times[PHASE_INDEX[phase]] = now - self._t
        self.ends[PHASE_INDEX[phase]] = now
        self._t = now


class Interval:
    """Sums since the last log line: samples, loss, correct, phase seconds, wall time."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.samples = self.loss = self.correct = 0.0
        self.times = np.zeros(len(PHASES))
        self.steps = 0
        self.t0 = time.perf_counter()

    def add(self, totals, times):
        self.samples += totals.count
        self.loss += totals.loss
        self.correct += totals.correct
        self.times += times
        self.steps += 1

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` (a validation pass) out of the wall time behind samples/s."""
        self.t0 += seconds

    def per_step_times(self) -> np.ndarray:
        return self.times / max(self.steps, 1)

    def record(self, step: int, epoch: int, lr: float) -> dict:
        wall = time.perf_counter() - self.t0
        n = max(self.samples, 1.0)
        return {"epoch": epoch, "step": step + 1, "loss": self.loss / n,
                "accuracy": self.correct / n, "samples_per_s": self.samples / wall if wall else 0,
                "lr": lr}


class MetricsLog:
    """Appends one JSON object per line and flushes, so a crashed run keeps its log."""

    def __init__(self, path):
        self.path = path
        with writing(path):
            self.file = open(path, "a", buffering=1)

    def write(self, record: dict):
        with writing(self.path):
            self.file.write(json.dumps(record, sort_keys=True) + "\n")

    def close(self):
        self.file.close()


def write_json_atomic(path, obj):
    """Replace `path` with obj as JSON, atomically (hpctrain.atomic)."""
    with replacing(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
