"""Stall watchdog: a rank that stops answering ends the job, with a message naming it.

A rank stopped by the OS (SIGSTOP, a hung node, swapped to death) or stuck in a kernel leaves
the others spinning in the step's allreduce forever. Each rank runs one watchdog thread on a
communicator of its own (MPI_THREAD_MULTIPLE): every `period` seconds it sends rank 0 where
its main thread is — (step, phase) — and rank 0's watchdog answers every rank. Rank 0 ends the
job when a rank has been silent for `timeout` seconds, or when the slowest rank has not
finished its step for that long; every other rank ends it when rank 0 has been silent that
long. Ending means one line naming the step, the phase and the ranks (with hosts) that did not
arrive, then MPI_Abort: exit status 1 within the timeout plus a period.

The default timeout is generous — max(120 s, 50 × the median step) — so a long checkpoint
never trips it; --stall-timeout 0 turns it off. Until the first step has finished (it
compiles the kernels, minutes on a cold cache under a loaded node) the timeout is at least
120 s, also when a shorter one is asked for.
"""

import os
import sys
import threading
import time

import numpy as np
from mpi4py import MPI

from .errors import EXIT_FAILED
from .metrics import PHASES as STEP_PHASES

# The step's phases (metrics.PHASES) and the moments between steps a rank can be caught in.
PHASES = ("start", *STEP_PHASES, "validation", "checkpoint", "end")
PHASE_CODE = {name: i for i, name in enumerate(PHASES)}
FLOOR_S, STEPS_OF_SLACK = 120.0, 50
HEARTBEAT_TAG = 77


def stall_timeout(requested: float | None, median_step_s: float) -> float:
    """The timeout in force: the one asked for, else max(120 s, 50 median steps)."""
    if requested is not None:
        return requested
    return max(FLOOR_S, STEPS_OF_SLACK * median_step_s)


class Watchdog:
    """Collective to create (it duplicates comm); `at(step, phase)` from the main thread."""

    def __init__(self, comm, requested_timeout: float | None):
        self.requested = requested_timeout
        self.enabled = requested_timeout != 0 and comm.Get_size() > 1 \
            and MPI.Query_thread() == MPI.THREAD_MULTIPLE
        self.step, self.phase = 0, PHASE_CODE["start"]
        self.step_times = []
        if not self.enabled:
            return
        self.comm = comm.Dup()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.hosts = self.comm.allgather(MPI.Get_processor_name())
        timeout = stall_timeout(requested_timeout, 0.0)
        self.period = min(1.0, timeout / 4)
        self.sends = []      # (request, buffer): a buffer lives until its send completes
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hpctrain-watchdog", daemon=True)
        self.thread.start()

    def at(self, step: int, phase: str) -> None:
        """Where the main thread is now (two attribute writes: cheap enough for every phase)."""
        self.step, self.phase = step, PHASE_CODE[phase]

    def step_took(self, seconds: float) -> None:
        """A finished step's time, for the default timeout (a bounded sample is kept)."""
        if len(self.step_times) < 1000:
            self.step_times.append(seconds)

    def timeout(self) -> float:
        if not self.step_times:  # the first step compiles: never judge it by a short timeout
            return max(FLOOR_S, stall_timeout(self.requested, 0.0))
        return stall_timeout(self.requested, float(np.median(self.step_times)))

    def close(self) -> None:
        if self.enabled:
            self.stop.set()
            self.thread.join()
            if self.rank != 0:
                # done: rank 0 may still write the last checkpoint and the summary while this
                # rank waits for it, and a rank that has finished is not a stalled one
                self._send(np.array([self.step, PHASE_CODE["end"]], dtype=np.int64), 0)
                MPI.Request.Waitall([request for request, _ in self.sends])
            self.comm.Free()

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            (self._root if self.rank == 0 else self._member)()
        except Exception as err:  # a watchdog must never take a healthy job down silently
            sys.stderr.write(f"hpctrain: warning: rank {self.rank}: the stall watchdog "
                             f"stopped ({type(err).__name__}: {err})\n")

    def _member(self) -> None:
        """Tell rank 0 where this rank is; end the job if rank 0 falls silent."""
        incoming = np.zeros(2, dtype=np.int64)
        heard = time.monotonic()
        pending = self.comm.Irecv(incoming, source=0, tag=HEARTBEAT_TAG)
        while not self.stop.wait(self.period):
            self._send(np.array([self.step, self.phase], dtype=np.int64), 0)
            while pending.Test():
                heard = time.monotonic()
                pending = self.comm.Irecv(incoming, source=0, tag=HEARTBEAT_TAG)
            silent = time.monotonic() - heard
            # Rank 1 reports a silent rank 0; the others only if rank 1 is gone too.
            grace = 0.0 if self.rank == 1 else 3 * self.period
            if silent > self.timeout() + grace:
                self._end(f"rank 0 (host {self.hosts[0]}) has not answered for {silent:.0f} s; "
                          f"this rank is at step {self.step + 1}, phase "
                          f"{PHASES[self.phase]}")
        pending.Cancel()

    def _root(self) -> None:
        """Hear every rank; end the job when one is silent or stuck."""
        now = time.monotonic()
        heard = np.full(self.size, now)
        where = np.zeros((self.size, 2), dtype=np.int64)
        moved = {r: (0, now) for r in range(self.size)}   # rank -> (its step, since when)
        buffers = [np.zeros(2, dtype=np.int64) for _ in range(self.size)]
        pending = {r: self.comm.Irecv(buffers[r], source=r, tag=HEARTBEAT_TAG)
                   for r in range(1, self.size)}
        while not self.stop.wait(self.period):
            now = time.monotonic()
            where[0] = (self.step, self.phase)
            heard[0] = now
            for r in range(1, self.size):
                while pending[r].Test():
                    heard[r], where[r] = now, buffers[r]
                    pending[r] = self.comm.Irecv(buffers[r], source=r, tag=HEARTBEAT_TAG)
                self._send(np.zeros(2, dtype=np.int64), r)
            for r in range(self.size):
                if where[r, 0] != moved[r][0]:
                    moved[r] = (int(where[r, 0]), now)
            self._judge(now, heard, where, moved)
        for request in pending.values():
            request.Cancel()

    def _send(self, message: np.ndarray, dest: int) -> None:
        self.sends = [(req, buf) for req, buf in self.sends if not req.Test()]
        self.sends.append((self.comm.Isend(message, dest, HEARTBEAT_TAG), message))

    def _judge(self, now, heard, where, moved) -> None:
        timeout = self.timeout()
        # a rank that said it is done waits for rank 0 alone: neither silent nor behind
        active = [r for r in range(self.size) if where[r, 1] != PHASE_CODE["end"]]
        if active == [0]:  # everyone else is done: nobody waits in a collective any more
            return
        silent = [r for r in active if now - heard[r] > timeout]
        front = int(where[:, 0].max())
        behind = [r for r in active if where[r, 0] < front and now - moved[r][1] > timeout]
        stuck = [r for r in active if now - moved[r][1] > timeout]
        if not silent and not behind and len(stuck) < len(active):
            return
        culprits = silent or behind or stuck
        names = ", ".join(f"{r} (host {self.hosts[r]}, "
                          + (f"silent for {now - heard[r]:.0f} s, last heard at step "
                             if r in silent else "at step ")
                          + f"{where[r, 0] + 1}, phase {PHASES[where[r, 1]]})" for r in culprits)
        self._end(f"step {front + 1} has not completed in {timeout:.0f} s (rank 0 waits in "
                  f"phase {PHASES[where[0, 1]]}); ranks that did not arrive: {names}")

    def _end(self, message: str) -> None:
        sys.stderr.write(f"hpctrain: error: stall: {message}\n")
        sys.stderr.flush()
        time.sleep(0.5)  # let the launcher forward the line before the abort
        self.comm.Abort(EXIT_FAILED)
        os._exit(EXIT_FAILED)
