"""What a scaling study runs: its points, its dataset size and each point's command line.

strong: the global batch is fixed, so every rank gets global/P samples per step;
weak:   the local batch is fixed, so the global batch grows as P times it.
"""

import sys
from dataclasses import dataclass, replace

from .. import settings
from ..config import parse_hidden
from ..errors import InputError
from ..launcher import find_mpiexec
from .workloads import WORKLOADS, Workload

# Dataset rows = this many global batches at the largest rank count: several steps per
# epoch, without one rank count reading much more than it trains on.
BATCHES_IN_DATASET = 4


@dataclass(frozen=True)
class PlannedRun:
    """One training job of the study: one repeat of one (ranks, algorithm) point, or of one
    (ranks x threads layout, algorithm) point of a --layouts sweep."""

    ranks: int
    algorithm: str
    repeat: int
    threads: int | None = None  # set in a layout sweep: `train --threads`

    @property
    def name(self) -> str:
        shape = f"p{self.ranks}" if self.threads is None else f"{self.ranks}x{self.threads}"
        return f"{shape}-{self.algorithm}-r{self.repeat}"


def plan_runs(rank_counts, algorithms, repeats, layouts=None) -> list:
    """Every job; `layouts` ([(ranks, threads)], a --layouts sweep) replaces rank_counts."""
    shapes = layouts or [(p, None) for p in rank_counts]
    # Repeats outermost: a drift in the machine's speed spreads over all points alike.
    return [PlannedRun(p, alg, r, t) for r in range(repeats) for p, t in shapes
            for alg in algorithms]


def parse_ranks(text: str) -> list:
    try:
        ranks = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--ranks must be comma-separated integers, got {text!r}") from None
    if not ranks or any(r < 1 for r in ranks):
        raise InputError(f"--ranks must be positive rank counts, got {text!r}")
    return sorted(set(ranks))


def parse_names(text: str, flag: str) -> list:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise InputError(f"{flag} needs at least one name")
    return list(dict.fromkeys(names))


def resolve_workload(name, features, hidden, classes, batch_size, global_batch) -> Workload:
    """The named workload (W1, W2) with any custom flags given on top of it."""
    if name not in WORKLOADS:
        raise InputError(f"--workload must be one of {', '.join(WORKLOADS)}, got {name!r}")
    base = WORKLOADS[name]
    return replace(base, features=features or base.features,
                   hidden=parse_hidden(hidden) if hidden else base.hidden,
                   classes=base.classes if classes is None else classes,
                   local_batch=batch_size or base.local_batch,
                   global_batch=global_batch or base.global_batch)


def dataset_rows(mode: str, work: Workload, max_ranks: int) -> int:
    batch = work.global_batch if mode == "strong" else work.local_batch * max_ranks
    return BATCHES_IN_DATASET * batch


def batch_args(mode: str, work: Workload) -> list:
    if mode == "strong":
        return ["--global-batch", str(work.global_batch)]
    return ["--batch-size", str(work.local_batch)]


def launch_prefix(launcher: str, ranks: int, extra: list) -> list:
    """The launcher part of a point's command line; extra args go before the rank count."""
    if launcher == "srun":
        # The plugin that pip's MPICH (and most MPIs) accept, overridable like train.sbatch's.
        mpi = settings.get("HPCTRAIN_SRUN_MPI")
        return ["srun", f"--mpi={mpi}", *extra, "--ntasks", str(ranks)]
    return [find_mpiexec(), *extra, "-n", str(ranks)]


def train_command(point, launcher, launcher_args, data, run_dir, mode, work, steps,
                  train_args) -> list:
    threads = [] if point.threads is None else ["--threads", str(point.threads)]
    return [*launch_prefix(launcher, point.ranks, launcher_args),
            sys.executable, "-m", "hpctrain", "train", "--data", data, "--out", run_dir,
            "--hidden", work.hidden_flag, *batch_args(mode, work), "--steps", str(steps),
            "--allreduce", point.algorithm, "--log-every", str(steps), "--force", *train_args,
            *threads]
