"""What rank 0 shows while training: a tqdm bar on a terminal, plain lines in a batch log.

Under mpiexec or srun stderr is not a terminal, so the log gets one line per logged step,
with the time since the command started and an estimate of the time left (from the steps
after the first, which carries compiling and start-up). The per-epoch validation lines show
in both modes: above the bar (tqdm.write), or as lines of their own.
"""

import sys
import time


class Progress:
    def __init__(self, total_steps: int, first_step: int, started: float):
        self.total, self.first, self.started = total_steps, first_step, started
        self.bar = _progress_bar(total_steps, first_step)
        self.steady_since = None  # (step, time) when the first step of this start ended

    def step_done(self, step: int) -> None:
        """After every step: the rate for the estimate counts from the end of the first."""
        if self.steady_since is None:
            self.steady_since = (step + 1, time.perf_counter())

    def logged(self, step: int, epoch: int, message: str) -> None:
        """A logged step: the bar's postfix, or a line with elapsed time and ETA."""
        if self.bar is not None:
            self.bar.n = step + 1
            self.bar.set_postfix_str(message, refresh=True)
            return
        now = time.perf_counter()
        print(f"epoch {epoch + 1}  step {step + 1}/{self.total}  {message}  "
              f"elapsed {clock(now - self.started)}  eta {self.eta(step, now)}", flush=True)

    def eta(self, step: int, now: float) -> str:
        left = self.total - (step + 1)
        if left <= 0:
            return clock(0)
        if self.steady_since is None or step + 1 <= self.steady_since[0]:
            return "?"
        done, since = step + 1 - self.steady_since[0], self.steady_since[1]
        return clock(left * (now - since) / done)

    def line(self, text: str) -> None:
        """A line of its own (validation results), above the bar when there is one."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def clock(seconds: float) -> str:
    """3725.4 -> '1:02:05' (h:mm:ss)."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _progress_bar(total: int, initial: int):
    """A tqdm bar on an interactive terminal; None (plain lines) in batch logs."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # optional nicety, loaded only for a terminal

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
