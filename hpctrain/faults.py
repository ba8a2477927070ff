"""Fault injection, for proving that a failure on one rank never leaves the others hanging.

HPCTRAIN_FAULT="KIND@RANK:STEP" makes rank RANK misbehave at step STEP (1-based):
  raise  an exception (the job must abort with a non-zero status within seconds),
  kill   SIGKILL itself: a rank that dies without a word (the launcher must end the job),
  nan    a NaN loss and gradient (every rank must stop together, keeping the last checkpoint),
  slow   from step STEP on, 20 ms more compute per step (a straggler the records must name),
  slowsave  3 s more for the checkpoint written after step STEP (a slow file system),
  slowval   2 s more for the validation after step STEP (a big validation split).
Unset (the normal case) it costs one integer comparison per step. `predict --data` counts
its blocks of rows as steps (`block`).
"""

import os
import signal
import time

from . import settings

SLOW_S = 0.02
SLOW_SAVE_S = 3.0
SLOW_VALIDATION_S = 2.0


class FaultPlan:
    def __init__(self, kind: str | None = None, step: int = -1):
        self.kind, self.step = kind, step

    @classmethod
    def from_env(cls, rank: int) -> "FaultPlan":
        fault = settings.get("HPCTRAIN_FAULT")
        if fault is None or fault[1] != rank:
            return cls()
        kind, _, step = fault
        return cls(kind, step - 1)

    def saving(self, steps_done: int) -> None:
        """Called as a checkpoint of `steps_done` steps is written."""
        if self.kind == "slowsave" and steps_done == self.step + 1:
            time.sleep(SLOW_SAVE_S)

    def validating(self, steps_done: int) -> None:
        """Called as the validation after `steps_done` steps starts."""
        if self.kind == "slowval" and steps_done == self.step + 1:
            time.sleep(SLOW_VALIDATION_S)

    def corrupt(self, step: int, loss: float, grad) -> float:
        """The loss to report for this step (and maybe a poisoned gradient)."""
        if self.kind == "slow":
            if step >= self.step:
                time.sleep(SLOW_S)
            return loss
        if step != self.step or self.kind in ("slowsave", "slowval"):
            return loss
        if self.kind in ("raise", "kill"):
            self.fail(step)
        if len(grad):     # empty where the gradient stays on a GPU: the loss says it
            grad[0] = float("nan")
        return float("nan")

    def block(self, index: int) -> None:
        """Called before block `index` (0-based) of `predict --data`'s rows: raise and kill
        fail there; the other kinds are about training and do nothing."""
        if index == self.step and self.kind in ("raise", "kill"):
            self.fail(index)

    def fail(self, step: int) -> None:
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected fault at step {step + 1} (HPCTRAIN_FAULT)")
