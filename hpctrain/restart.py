"""`hpctrain run`: start a job under mpiexec and start it again when it fails.

    hpctrain run -n 4 --max-restarts 3 -- train --data D --out RUN --epochs 10

The agent (one plain process, no MPI) runs `mpiexec -n P python -m hpctrain ARGS`. When the
job fails — a rank killed, a stall ended by the watchdog, a node lost — it says why and starts
it again with `--resume`, so training continues from the newest good checkpoint, up to
--max-restarts times; HPCTRAIN_RESTART tells the job which attempt it is (summary.json
records it). It does not restart what restarting cannot fix: bad input (exit 2), a finished
job (0), or a job stopped on purpose — a signal to the agent is passed on to the job, which
checkpoints and stops (exit 3), and the agent stops with it. torchrun's elastic agent is the
peer; the rank count stays fixed here (resuming at another P works, by hand).
"""

import os
import signal
import subprocess
import sys
import threading

from .errors import EXIT_BAD_INPUT, EXIT_STOPPED
from .launcher import find_mpiexec
from .signals import STOP_SIGNALS

NO_RESTART = {0: "done", EXIT_BAD_INPUT: "bad input", EXIT_STOPPED: "stopped by a signal"}


def run_with_restarts(ranks: int, max_restarts: int, args: list, mpiexec_args=()) -> int:
    """The job's final exit status."""
    agent = Agent()
    for attempt in range(max_restarts + 1):
        argv = args if attempt == 0 or "--resume" in args else [*args, "--resume"]
        cmd = [find_mpiexec(), *mpiexec_args, "-n", str(ranks), sys.executable, "-m",
               "hpctrain", *argv]
        code, last_error = agent.run(cmd, {**os.environ, "HPCTRAIN_RESTART": str(attempt)})
        if code in NO_RESTART or agent.stopping:
            return code
        why = f"exit status {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"
        detail = f" ({last_error})" if last_error else ""
        if attempt == max_restarts:
            say(f"the job failed: {why}{detail}; no restarts left (--max-restarts "
                f"{max_restarts})")
            return code
        say(f"the job failed: {why}{detail}; restart {attempt + 1} of {max_restarts} from "
            f"the newest good checkpoint")
    return code


class Agent:
    """Runs one attempt at a time, passing stop signals on and remembering the job's last
    error line (its stderr is copied through as it comes)."""

    def __init__(self):
        self.child, self.stopping = None, False
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._forward)

    def _forward(self, signum, frame) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def run(self, cmd, env) -> tuple[int, str]:
        self.child = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True,
                                      bufsize=1)
        last = [""]
        copier = threading.Thread(target=_copy_stderr, args=(self.child.stderr, last))
        copier.start()
        code = self.child.wait()
        copier.join()
        return code, last[0]


def _copy_stderr(stream, last) -> None:
    for line in stream:
        sys.stderr.write(line)
        sys.stderr.flush()
        if "error" in line:
            last[0] = line.strip()


def say(message: str) -> None:
    print(f"hpctrain run: {message}", file=sys.stderr, flush=True)
