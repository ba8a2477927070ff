"""Everything a rank checks and loads before training: the run's input, agreed by all ranks.

`prepare` runs on every rank inside failures.collective_check, so bad input found by any rank
(a flag, the dataset, a checkpoint) ends every rank with one message and exit status 2, before
any collective of the training itself and before the run directory is touched.
"""

import os
from dataclasses import dataclass

import numpy as np

from . import checkpoint as ckpt
from .comm import get_allreduce
from .config import TrainConfig
from .cuda_engine import cuda_available
from .data import aligned_slice, open_dataset, rank_slice
from .errors import InputError
from .model import MLP
from .rundir import check_run_dir


@dataclass
class RankRows:
    """This rank's training rows: rows [start, start + len(X)) of n_total in all."""

    X: np.ndarray
    y: np.ndarray
    start: int
    n_total: int


@dataclass
class Job:
    """What every rank validated and loaded; the same model and settings on all ranks."""

    model: MLP
    rows: RankRows
    val: tuple | None
    resume_from: ckpt.Checkpoint | None
    device: str
    standardization: tuple | None


def prepare(cfg: TrainConfig, comm, warn, lock) -> Job:
    """Every check that bad input can fail; `warn(message)` reports skipped checkpoints and
    a global batch larger than the data. Sizes are checked against the memory they need
    before anything is allocated or the run directory is looked at. Rank 0 takes the run
    directory's lock (a RunLock) once the directory passed its check."""
    cfg.validate()
    get_allreduce(cfg.allreduce)
    dataset = open_dataset(cfg.data)
    if cfg.task is not None and cfg.task != dataset.task:
        raise InputError(f"dataset task is {dataset.task}, but --task {cfg.task} was asked for",
                         cfg.data)
    if "train" not in dataset.splits or dataset.rows("train") == 0:
        raise InputError("dataset has no training rows", cfg.data)
    rank, size = comm.Get_rank(), comm.Get_size()
    n_train = dataset.rows("train")
    device = resolve_device(cfg.device)
    outputs = dataset.classes if dataset.task == "multiclass" else 1
    check_memory((dataset.features, *cfg.hidden, outputs), cfg, size, n_train, device)
    model = MLP(dataset.features, cfg.hidden, cfg.activation, dataset.task, dataset.classes)
    if rank == 0:
        check_run_dir(cfg)
        check_extra_outputs(cfg)
        lock.acquire(note=warn)
    resume_from = None
    if cfg.resume and ckpt.list_checkpoints(cfg.out):
        resume_from = ckpt.newest_good(cfg.out, model, warn=warn)
        warn(f"hpctrain: resuming from step {resume_from.step} ({resume_from.path})")
    elif cfg.resume:  # e.g. a requeued job that never reached its first checkpoint
        warn(f"hpctrain: note: --resume: no checkpoint in {cfg.out}; starting at step 0")
    start, stop = rank_slice(n_train, rank, size)
    X, y = dataset.read("train", start, stop)
    val = None
    if "val" in dataset.splits:
        # --reproducible evaluates whole micro-batch chunks, each on one rank, for any P
        bounds = (aligned_slice(dataset.rows("val"), rank, size, cfg.micro_batch)
                  if cfg.reproducible else rank_slice(dataset.rows("val"), rank, size))
        val = dataset.read("val", *bounds)
    warn_large_batch(cfg, size, n_train, warn)  # last: a bad input is one line, alone
    warn_idle_ranks(cfg, size, warn)
    return Job(model, RankRows(X, y, start, n_train), val, resume_from, device,
               dataset.standardization)


def check_extra_outputs(cfg: TrainConfig) -> None:
    """--trace's folder can be written; --tensorboard's writer is installed."""
    if cfg.trace:
        from .timeline import check_trace_path

        check_trace_path(cfg.trace)
    if cfg.tensorboard:
        from .tensorboard_log import require_writer

        require_writer()


def batch_flag(cfg: TrainConfig) -> str:
    return (f"--global-batch {cfg.global_batch}" if cfg.global_batch
            else f"--batch-size {cfg.batch_size}")


def warn_large_batch(cfg: TrainConfig, ranks: int, n_train: int, warn) -> None:
    """A global batch larger than the training rows makes every epoch one step on fewer rows
    than the batch asks for: say so (rank 0's `warn`), since it trains poorly and silently."""
    global_batch = cfg.global_batch or cfg.batch_size * ranks
    if global_batch <= n_train:
        return
    made_of = (f"{batch_flag(cfg)} x {ranks} ranks" if not cfg.global_batch and ranks > 1
               else batch_flag(cfg))
    warn(f"hpctrain: warning: the global batch {global_batch} ({made_of}) is larger than the "
         f"{n_train} training rows: every epoch is a single step of {n_train} rows; give a "
         f"smaller {batch_flag(cfg).split()[0]}")


def warn_idle_ranks(cfg: TrainConfig, ranks: int, warn) -> None:
    """--reproducible with fewer micro-batches per global batch than ranks: some ranks have
    nothing to compute in every step. Correct (the bits do not change), but slow: say so."""
    if not cfg.reproducible:
        return
    micro_batches = -(-cfg.global_batch // cfg.micro_batch)
    if micro_batches < ranks:
        warn(f"hpctrain: warning: --reproducible: global batch {cfg.global_batch} makes "
             f"{micro_batches} micro-batches of {cfg.micro_batch} rows, so {ranks - micro_batches}"
             f" of the {ranks} ranks have none to compute in each step; a --micro-batch of at "
             f"most {max(cfg.global_batch // ranks, 1)} keeps them busy (the bits depend on it: "
             f"use the same one in every run that must match)")


def estimate_rank_bytes(layers, cfg: TrainConfig, ranks: int, n_train: int,
                        device: str = "cpu") -> int:
    """About the bytes one rank allocates: the sum of `memory_parts`."""
    return sum(memory_parts(layers, cfg, ranks, n_train, device).values())


def memory_parts(layers, cfg: TrainConfig, ranks: int, n_train: int,
                 device: str = "cpu") -> dict:
    """About the bytes one rank allocates (layers = (features, *hidden, outputs)), in exact
    integers (no overflow, whatever the sizes), by what they hold:
      parameters: n_params x 4 bytes x (parameters + gradient + optimizer buffers: Adam 2,
                  SGD with momentum 1);
      batch:      batch rows x sum(layer widths) x 4 bytes x 2 (the gathered rows, every
                  layer's output, the deltas);
      rows:       the rank's share of the training rows (features + label, 4 bytes each).
    On a GPU the optimizer and the activations live there: the host keeps the parameters,
    the gradient buffer and the (two) gathered batches."""
    n_params = sum(i * o + o for i, o in zip(layers[:-1], layers[1:], strict=True))
    buffers = {"adam": 2, "sgd": 1 if cfg.momentum > 0 else 0}.get(cfg.optimizer, 2)
    local_batch = -(-cfg.global_batch // ranks) if cfg.global_batch else cfg.batch_size
    # a global shuffle's gather buffer holds a whole global batch
    batch_rows = cfg.global_batch if cfg.global_batch and cfg.shuffle == "global" \
        else local_batch
    rows = -(-n_train // ranks) * (layers[0] + 1) * 4
    if device == "cuda":
        return {"parameters": n_params * 4 * 2, "batch": batch_rows * (layers[0] + 1) * 4 * 2,
                "rows": rows}
    return {"parameters": n_params * 4 * (2 + buffers),
            "batch": batch_rows * sum(layers) * 4 * 2, "rows": rows}


def memory_limit() -> tuple[int, str]:
    """(bytes, what) this process may use: physical memory, or a lower cgroup limit."""
    limit, what = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "physical memory"
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < limit:
            limit, what = int(text), f"the cgroup limit ({path})"
    return limit, what


def check_memory(layers, cfg: TrainConfig, ranks: int, n_train: int, device: str) -> None:
    """Refuse sizes whose memory one rank alone cannot hold, before anything is allocated
    (an InputError naming --hidden and the batch flag, with the estimate)."""
    parts = memory_parts(layers, cfg, ranks, n_train, device)
    need = sum(parts.values())
    try:
        limit, what = memory_limit()
    except (ValueError, OSError):  # no sysconf names here: nothing to compare with
        return
    if need <= limit:
        return
    hidden = ",".join(map(str, cfg.hidden)) or "''"
    n_params = sum(i * o + o for i, o in zip(layers[:-1], layers[1:], strict=True))
    raise InputError(
        f"--hidden {hidden} with {batch_flag(cfg)}: a rank needs about {gigabytes(need)} GB "
        f"({gigabytes(parts['parameters'])} GB for {n_params:,} parameters on "
        f"{layers[0]} features with {cfg.optimizer}, {gigabytes(parts['batch'])} GB for the "
        f"batch, {gigabytes(parts['rows'])} GB for its training rows), more than the "
        f"{gigabytes(limit)} GB of {what}; give a smaller --hidden or "
        f"{batch_flag(cfg).split()[0]}")


def gigabytes(n: int) -> str:
    """1234567890123 -> '1,235'; 2_500_000_000 -> '2.50'; beyond 1e15 GB in e-notation."""
    gb = n / 1e9 if n < 10**300 else float("inf")
    if gb < 1000:
        return f"{gb:.2f}"
    return f"{gb:,.0f}" if gb < 1e15 else f"{gb:.3e}"


def resolve_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    ok, reason = cuda_available()
    if device == "cuda" and not ok:
        raise InputError(f"--device cuda: no usable GPU ({reason})")
    return "cuda" if ok else "cpu"
