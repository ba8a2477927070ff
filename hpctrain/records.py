"""What rank 0 records about a run: metrics.jsonl, progress lines, summary.json.

`RunRecords` is the one place that knows what rank 0 writes: metrics.jsonl (one line per
logged step and per validation), the progress bar or plain progress lines, and summary.json.
Every rank holds one, because the phase-time gathers are collective; only the root writes.
Without a run directory (the Python API's `fit`) nothing is written and nothing is printed.

Phase times are measured on every rank and gathered at log steps, so the log shows both the
mean and the max over ranks: a max far above the mean is imbalance, and the allreduce time of
the fast ranks is then mostly waiting for the slow one.
"""

import os
import time

import numpy as np
from mpi4py import MPI

from .metrics import PHASES, Interval, MetricsLog, write_json_atomic
from .progress import Progress


def gather_phase_stats(comm, per_step: np.ndarray) -> dict | None:
    """{phase: {"mean", "max", "slowest_rank", "behind_median"}} over ranks, on rank 0 (None
    elsewhere): seconds per step; the slowest rank and how far it is behind the median rank,
    which is where to look for a straggler. One Gather of 4 numbers per rank."""
    local = np.ascontiguousarray(per_step, dtype=np.float64)
    table = np.empty((comm.Get_size(), len(local))) if comm.Get_rank() == 0 else None
    comm.Gather(local, table, root=0)
    if table is None:
        return None
    slowest = table.argmax(axis=0)
    median = np.median(table, axis=0)
    return {p: {"mean": float(table[:, i].mean()), "max": float(table[slowest[i], i]),
                "slowest_rank": int(slowest[i]),
                "behind_median": float(table[slowest[i], i] - median[i])}
            for i, p in enumerate(PHASES)}


def allreduce_split(comm, per_step: np.ndarray, wait: float) -> dict | None:
    """{"waiting", "moving"}: of the mean rank's allreduce seconds per step, those spent
    waiting for the slowest rank to arrive (gradsync's READY slots) and the rest, moving
    bytes; on rank 0, None elsewhere. Each rank's wait is at most its allreduce time."""
    allreduce = float(per_step[PHASES.index("allreduce")])
    mine = np.array([min(wait, allreduce), allreduce])  # a NaN wait stays NaN
    total = np.empty_like(mine) if comm.Get_rank() == 0 else None
    comm.Reduce(mine, total, op=MPI.SUM, root=0)
    if total is None:
        return None
    waiting, whole = total / comm.Get_size()
    if not np.isfinite(waiting):
        return {"waiting": None, "moving": None}
    return {"waiting": float(waiting), "moving": float(whole - waiting)}


class RunRecords:
    """Per-step bookkeeping on every rank; what rank 0 logs, shows and summarises."""

    def __init__(self, comm, out: str | None, log_every: int, first_step: int,
                 total_steps: int, started: float, tensorboard: bool = False):
        self.comm, self.out, self.log_every = comm, out, log_every
        self.first_step, self.total_steps, self.started = first_step, total_steps, started
        self.is_root = comm.Get_rank() == 0
        writes = self.is_root and out
        self.log = MetricsLog(os.path.join(out, "metrics.jsonl")) if writes else None
        self.progress = Progress(total_steps, first_step, started) if writes else None
        self.board = None
        if writes and tensorboard:
            from .tensorboard_log import BoardLog  # optional extra, loaded only when asked

            self.board = BoardLog(out, first_step)
        self.interval = Interval()
        self.run_times, self.measured, self.busy = np.zeros(len(PHASES)), 0, 0.0
        self.waited = 0.0  # seconds of the measured steps' allreduces spent waiting
        self.time_to_first = None
        self.final = {}

    def begin(self) -> None:
        """As the loop starts: samples/s counts from here, not from start-up (compiling,
        `auto`'s measurements)."""
        self.interval.reset()

    def step(self, step: int, epoch: int, totals, times, lr: float, seconds: float,
             force_log: bool = False, wait: float = float("nan")) -> None:
        """After each step: add it up, and write a log line every log_every steps (and at the
        last step, or when `force_log`: the step a run stops at is always logged)."""
        self.interval.add(totals, times)
        if (step + 1) % self.log_every == 0 or step + 1 == self.total_steps or force_log:
            self._log_step(step, epoch, lr)
        if self.time_to_first is None:
            # The first step carries one-off costs: it is reported, not averaged in.
            self.time_to_first = time.perf_counter() - self.started
            if self.progress is not None:
                self.progress.step_done(step)
        else:
            self.run_times += times
            self.measured += 1
            self.busy += seconds
            self.waited += wait  # NaN when not measured (then reported as unknown)

    def _log_step(self, step: int, epoch: int, lr: float) -> None:
        interval = self.interval
        phases = gather_phase_stats(self.comm, interval.per_step_times())
        record = interval.record(step, epoch, lr)
        interval.reset()
        if not self.is_root:
            return
        record["time"] = phases
        self.final.update(loss=record["loss"], accuracy=record["accuracy"])
        self._write(record)
        message = (f"loss {record['loss']:.4f}  acc {record['accuracy']:.3f}  "
                   f"{record['samples_per_s']:,.0f} samples/s")
        if self.progress is not None:
            self.progress.logged(step, epoch, message)

    def validation(self, epoch: int, step: int, sums: np.ndarray, seconds: float = 0.0) -> None:
        """The globally summed (loss, correct, rows) of a validation pass that took `seconds`
        (left out of the next log line's samples/s: it measures training)."""
        self.interval.exclude(seconds)
        if not self.is_root or sums[2] == 0:
            return
        record = {"epoch": epoch, "step": step + 1, "val_loss": sums[0] / sums[2],
                  "val_accuracy": sums[1] / sums[2]}
        self.final.update(val_loss=record["val_loss"], val_accuracy=record["val_accuracy"])
        self._write(record)
        if self.progress is not None:
            self.progress.line(f"epoch {epoch + 1}  val loss {record['val_loss']:.4f}  "
                               f"val acc {record['val_accuracy']:.3f}")

    def _write(self, record: dict) -> None:
        if self.log is not None:
            self.log.write(record)
        if self.board is not None:
            self.board.write(record)

    def summary(self, global_batch: int, run_facts: dict) -> dict | None:
        """The scaling metrics (collective); written to summary.json and returned on rank 0."""
        per_step = self.run_times / max(self.measured, 1)
        phases = gather_phase_stats(self.comm, per_step)
        split = allreduce_split(self.comm, per_step, self.waited / max(self.measured, 1))
        first = self.comm.reduce(self.time_to_first or 0.0, op=MPI.MAX, root=0)
        hosts = self.comm.gather(MPI.Get_processor_name(), root=0)
        if not self.is_root:
            return None
        size, measured = self.comm.Get_size(), self.measured
        step_time = self.busy / measured if measured else float("nan")
        samples_per_s = global_batch / step_time if measured else float("nan")
        mean_total = sum(p["mean"] for p in phases.values())
        summary = {
            "ranks": size, "global_batch": global_batch, "local_batch": global_batch / size,
            "steps": self.total_steps, "measured_steps": measured, "step_time_s": step_time,
            "samples_per_s": samples_per_s, "samples_per_s_per_rank": samples_per_s / size,
            "time_to_first_step_s": first,
            "comm_fraction": phases["allreduce"]["mean"] / mean_total if mean_total else 0.0,
            "phase_times_s": {p: v["max"] for p, v in phases.items()},
            "phase_times_mean_s": {p: v["mean"] for p, v in phases.items()},
            "allreduce_split_s": split,
            # Per phase over the measured steps: which rank was slowest, on which host, and
            # by how many seconds per step it trailed the median rank.
            "stragglers": {p: {"rank": v["slowest_rank"], "host": hosts[v["slowest_rank"]],
                               "behind_median_s": v["behind_median"]}
                           for p, v in phases.items()},
            "final": self.final, "hosts": sorted(set(hosts)), **run_facts,
        }
        if self.out:
            write_json_atomic(os.path.join(self.out, "summary.json"), summary)
        return summary

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.log is not None:
            self.log.close()
        if self.board is not None:
            self.board.close()

