"""Fault injection, for proving that a failure on one rank never leaves the others hanging.

HPCTRAIN_FAULT="KIND@RANK:STEP" makes rank RANK misbehave at step STEP (1-based):
  raise  an exception (the job must abort with a non-zero status within seconds),
  nan    a NaN loss and gradient (every rank must stop together, keeping the last checkpoint).
Unset (the normal case) it costs one integer comparison per step.
"""

import os

from .errors import InputError


class FaultPlan:
    def __init__(self, kind: str | None = None, step: int = -1):
        self.kind, self.step = kind, step

    @classmethod
    def from_env(cls, rank: int) -> "FaultPlan":
        spec = os.environ.get("HPCTRAIN_FAULT", "")
        if not spec:
            return cls()
        try:
            kind, where = spec.split("@")
            fault_rank, step = (int(v) for v in where.split(":"))
            assert kind in ("raise", "nan")
        except (ValueError, AssertionError):
            raise InputError(f"HPCTRAIN_FAULT must look like raise@RANK:STEP or nan@RANK:STEP, "
                             f"got {spec!r}") from None
        return cls(kind, step - 1) if fault_rank == rank else cls()

    def corrupt(self, step: int, loss: float, grad) -> float:
        """The loss to report for this step (and maybe a poisoned gradient)."""
        if step != self.step:
            return loss
        if self.kind == "raise":
            raise RuntimeError(f"injected fault at step {step + 1} (HPCTRAIN_FAULT)")
        grad[0] = float("nan")
        return float("nan")
