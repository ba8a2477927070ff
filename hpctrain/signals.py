"""Stop requests: a signal asks the run to stop at a step boundary, checkpointed, not to die.

SLURM sends SIGTERM at a time limit or preemption (and the signal of `--signal` ahead of it),
mpiexec forwards SIGINT/SIGTERM/SIGUSR1 to every rank, a user presses Ctrl-C. Each of
SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 only sets a flag here; the flag rides the next step's
allreduce (hpctrain.gradsync), so every rank learns it at the same step even if the signal
reached only one of them, and rank 0 checkpoints that step before the job exits with status
EXIT_STOPPED. A second signal while the checkpoint is written changes nothing: the handler
never raises, so it cannot interrupt the write, and once stopping the signals are ignored.
"""

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class StopRequests:
    """Installs the handlers (main thread only) and remembers the first signal received."""

    def __init__(self):
        self.signum = 0
        self.previous = {}

    def install(self) -> "StopRequests":
        for sig in STOP_SIGNALS:
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if not self.signum:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum != 0

    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a signal on another rank"

    def agree(self, comm) -> str:
        """Collective, once every rank has seen the stop: the signal's name as one rank got
        it (the highest number if ranks got different ones), the same on every rank, so
        rank 0 can record it even when the signal reached only another rank."""
        from mpi4py import MPI

        self.signum = comm.allreduce(self.signum, op=MPI.MAX)
        return self.name()

    def ignore_further(self) -> None:
        """Once stopping, more signals must not kill the process on its way out, e.g. while
        another rank still writes the checkpoint: ignored at the C level, which (unlike a
        Python handler) also holds during interpreter shutdown and MPI_Finalize."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}
