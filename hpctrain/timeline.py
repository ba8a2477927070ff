"""`--trace FILE`: every rank's steps on one timeline, as Chrome trace-event JSON.

Open the file in Perfetto (ui.perfetto.dev, "Open trace file") or chrome://tracing. One
process, "hpctrain train", with one track (thread) per rank, tid = rank, named "rank R
(host)". Per step a "step N" slice holds four slices, data / compute / allreduce / update;
validation passes and rank 0's checkpoints are slices of their own (cat "validation",
"checkpoint"). A straggler shows as the rank whose compute (or data) runs long while the
others' allreduce waits for it.

No second clock: the slices are the StepTimer's own laps (hpctrain.metrics), which also make
the log's per-phase times. Each rank counts from the end of one Barrier at the start, so the
tracks line up to within that barrier's exit skew (microseconds on one node) also across nodes,
whose clocks are not compared. Only the steps of --trace-steps are kept (default: the first
100 of this start), in one preallocated array per rank; at the end rank 0 gathers them and
writes the file atomically (hpctrain.atomic).
"""

import json
import os
import time

import numpy as np
from mpi4py import MPI

from .atomic import replacing
from .errors import InputError
from .metrics import PHASES
from .steps_window import steps_kept

PID = 1  # the one process of the trace; the ranks are its threads
TRACK_SORT = "thread_sort_index"


def check_trace_path(path: str) -> None:
    """Before anything starts: the trace can be written there (InputError naming --trace)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError("--trace: is a directory; give a file name", path)
    if not os.path.isdir(folder):
        raise InputError("--trace: no such directory", folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError("--trace: directory not writable", folder)


class Timeline:
    """Collects this rank's laps for the steps in the window; `write` is collective."""

    def __init__(self, comm, path: str | None, window: str | None, first_step: int,
                 total_steps: int):
        self.comm, self.path = comm, path
        kept = steps_kept(window, first_step)
        self.window = range(max(kept.start, first_step), min(kept.stop, total_steps))
        # per kept step: began, then each phase's (start, end); NaN: not reached
        self.laps = np.full((len(self.window) if path else 0, 1 + 2 * len(PHASES)), np.nan)
        self.marks = []  # (name, step, began, seconds): validation, checkpoints
        if path:
            comm.Barrier()  # the common zero of every rank's clock
        self.origin = time.perf_counter()

    def step(self, step: int, timer) -> None:
        """After a step: its laps from the StepTimer (when the step is in the window)."""
        if not self.path or step not in self.window:
            return
        row = self.laps[step - self.window.start]
        row[0] = timer.began
        row[1::2] = timer.ends - timer.times
        row[2::2] = timer.ends

    def mark(self, name: str, step: int, began: float, seconds: float) -> None:
        """A validation or checkpoint that followed `step` (0-based), when in the window."""
        if self.path and step in self.window:
            self.marks.append((name, step, began, seconds))

    def write(self) -> None:
        """Collective: rank 0 gathers every rank's laps and writes the trace file."""
        if not self.path:
            return
        mine = (MPI.Get_processor_name(), self.laps - self.origin,
                [(n, s, b - self.origin, d) for n, s, b, d in self.marks])
        gathered = self.comm.gather(mine, root=0)
        if gathered is None:
            return
        trace = {"traceEvents": trace_events(gathered, self.window.start),
                 "displayTimeUnit": "ms",
                 "otherData": {"ranks": len(gathered),
                               "steps": [self.window.start + 1, self.window.stop],
                               "clock": "seconds from a barrier at the start, per rank"}}
        with replacing(self.path) as tmp, open(tmp, "w") as f:
            json.dump(trace, f, separators=(",", ":"))
            f.write("\n")


def trace_events(gathered: list, first: int) -> list:
    """[(host, laps, marks)] per rank -> trace events (ts and dur in microseconds)."""
    events = [meta("process_name", 0, {"name": f"hpctrain train ({len(gathered)} ranks)"})]
    for rank, (host, laps, marks) in enumerate(gathered):
        events += [meta("thread_name", rank, {"name": f"rank {rank} ({host})"}),
                   meta(TRACK_SORT, rank, {"sort_index": rank})]
        for i, row in enumerate(laps):
            if np.isnan(row[0]):
                continue  # the run ended (or stopped) before this step
            number = first + i + 1
            events.append(slice_event(f"step {number}", "step", rank, row[0],
                                      np.nanmax(row[2::2]) - row[0], number))
            for p, phase in enumerate(PHASES):
                start, end = row[1 + 2 * p], row[2 + 2 * p]
                if end >= row[0]:  # lapped in this step
                    events.append(slice_event(phase, "phase", rank, start, end - start, number))
        for name, step, began, seconds in marks:
            events.append(slice_event(name, name, rank, began, seconds, step + 1))
    return events


def slice_event(name: str, cat: str, rank: int, start_s: float, seconds: float,
                step: int) -> dict:
    return {"ph": "X", "name": name, "cat": cat, "pid": PID, "tid": rank,
            "ts": round(start_s * 1e6, 3), "dur": round(max(seconds, 0.0) * 1e6, 3),
            "args": {"step": step}}


def meta(name: str, rank: int, args: dict) -> dict:
    return {"ph": "M", "name": name, "pid": PID, "tid": rank, "ts": 0, "args": args}
