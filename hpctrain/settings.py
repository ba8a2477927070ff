"""Every HPCTRAIN_* environment variable the package reads, in one table, with one policy.

A variable that is set but bad is an InputError naming it (exit status 2), whichever module
reads it; `check_environment()` validates all of them when a command starts, before MPI or any
file, so a typo fails at once rather than at the first allreduce. Reading goes through `get`,
so the parse, the default and the message are written once. The README's table lists the same
variables (a test keeps the two in step).
"""

import os
import re
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    parse: object          # str -> value; raises ValueError(why) on a bad value
    help: str


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ValueError("expected a finite number of seconds >= 0")
    return value


def _non_negative_int(text):
    if not text.isdigit():
        raise ValueError("expected a whole number >= 0")
    return int(text)


def _choice(*allowed):
    def parse(text):
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text
    return parse


def _node_layout(text):
    """'2x2' -> [2, 2]; '3,1' or '3+1' -> [3, 1] (the sum is checked against the job later)."""
    text = text.lower()
    grid = re.fullmatch(r"(\d+)x(\d+)", text)
    if grid:
        sizes = [int(grid.group(2))] * int(grid.group(1))
    elif re.fullmatch(r"\d+([,+]\d+)*", text):
        sizes = [int(part) for part in re.split(r"[,+]", text)]
    else:
        raise ValueError("expected NODESxRANKS (e.g. 2x2) or sizes like 3,1")
    if not sizes or min(sizes) < 1:
        raise ValueError("every pretend node needs at least one rank")
    return sizes


def _fault(text):
    """'raise@1:4' -> ("raise", 1, 4): rank 1 fails at step 4 (1-based)."""
    found = re.fullmatch(r"(raise|kill|nan|slowsave|slowval|slow)@(\d+):(\d+)", text)
    if not found:
        raise ValueError("expected raise@RANK:STEP, kill@RANK:STEP, nan@RANK:STEP, "
                         "slow@RANK:STEP, slowsave@RANK:STEP or slowval@RANK:STEP")
    return found.group(1), int(found.group(2)), int(found.group(3))


def _executable(text):
    return text


SETTINGS = {s.name: s for s in (
    Setting("HPCTRAIN_ALLREDUCE_CHECK", "first", _choice("first", "always"),
            "`always`: agree on buffer length and dtype across ranks on every allreduce call, "
            "not only the first per size (a debug mode; one small Allgather per call)"),
    Setting("HPCTRAIN_AUTO_BUDGET_S", 0.4, _non_negative_float,
            "seconds `auto` may spend measuring one size class, all candidates together"),
    Setting("HPCTRAIN_FAKE_NODES", None, _node_layout,
            "split the ranks into pretend nodes (`2x2`, `3,1`) to test the hierarchical `shm` "
            "on one machine"),
    Setting("HPCTRAIN_SHM_CHUNK_BYTES", 0, _non_negative_int,
            "pipeline `shm` in chunks of this many bytes per row (0, the default: off)"),
    Setting("HPCTRAIN_FAULT", None, _fault,
            "`raise@R:S` / `nan@R:S`: make rank R fail at step S; `kill@R:S`: rank R "
            "kills itself (SIGKILL) at step S; `slow@R:S`: make it 20 ms slower per step "
            "from step S on; `slowsave@R:S`: 3 s more for the checkpoint after step S; "
            "`slowval@R:S`: 2 s more for the validation after step S; `predict --data` "
            "counts its blocks of rows as steps (for fault tests)"),
    Setting("HPCTRAIN_SRUN_MPI", "pmi2", _executable,
            "srun's `--mpi` plugin for `bench scaling --launcher srun` and slurm/train.sbatch"),
    Setting("HPCTRAIN_RESTART", 0, _non_negative_int,
            "set by `hpctrain run`: which attempt of the job this is (0: the first); "
            "summary.json records it as `restarts`"),
    Setting("HPCTRAIN_GPU_ROWS", "auto", _choice("auto", "off"),
            "`--device cuda`: `auto` holds a rank's training rows on the GPU when they take at "
            "most half its free memory (batches are gathered there); `off` copies each batch "
            "from host memory instead"),
    Setting("HPCTRAIN_MPIEXEC", None, _executable,
            "the mpiexec that `hpctrain demo` and `bench scaling` start (default: the one "
            "beside this Python, then the one on PATH)"),
)}


def get(name: str):
    """The value of a variable: its default when unset or empty, InputError when bad."""
    setting = SETTINGS[name]
    text = os.environ.get(name, "").strip()
    if not text:
        return setting.default
    try:
        return setting.parse(text)
    except ValueError as err:
        raise InputError(f"{name}={text!r}: {err}") from None


def check_environment() -> None:
    """Validate every HPCTRAIN_* variable that is set; unknown ones are left alone (the batch
    scripts have their own, documented with them)."""
    for name in SETTINGS:
        try:
            get(name)
        except InputError as err:
            # Every rank of a job sees the same environment: rank 0 alone says so.
            err.collective = True
            raise
