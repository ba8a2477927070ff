"""Everything a rank checks and loads before training: the run's input, agreed by all ranks.

`prepare` runs on every rank inside failures.collective_check, so bad input found by any rank
(a flag, the dataset, a checkpoint) ends every rank with one message and exit status 2, before
any collective of the training itself and before the run directory is touched.
"""

from dataclasses import dataclass

import numpy as np

from . import checkpoint as ckpt
from .comm import get_allreduce
from .config import TrainConfig
from .cuda_engine import cuda_available
from .data import open_dataset, rank_slice
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
    """Every check that bad input can fail; `warn(message)` reports skipped checkpoints.
    Rank 0 takes the run directory's lock (a RunLock) once the directory passed its check."""
    cfg.validate()
    get_allreduce(cfg.allreduce)
    dataset = open_dataset(cfg.data)
    if cfg.task is not None and cfg.task != dataset.task:
        raise InputError(f"dataset task is {dataset.task}, but --task {cfg.task} was asked for",
                         cfg.data)
    if "train" not in dataset.splits or dataset.rows("train") == 0:
        raise InputError("dataset has no training rows", cfg.data)
    model = MLP(dataset.features, cfg.hidden, cfg.activation, dataset.task, dataset.classes)
    rank, size = comm.Get_rank(), comm.Get_size()
    if rank == 0:
        check_run_dir(cfg)
        lock.acquire(note=warn)
    resume_from = None
    if cfg.resume and ckpt.list_checkpoints(cfg.out):
        resume_from = ckpt.newest_good(cfg.out, model, warn=warn)
        warn(f"hpctrain: resuming from step {resume_from.step} ({resume_from.path})")
    elif cfg.resume:  # e.g. a requeued job that never reached its first checkpoint
        warn(f"hpctrain: note: --resume: no checkpoint in {cfg.out}; starting at step 0")
    n_train = dataset.rows("train")
    start, stop = rank_slice(n_train, rank, size)
    X, y = dataset.read("train", start, stop)
    val = dataset.read_rank("val", rank, size) if "val" in dataset.splits else None
    return Job(model, RankRows(X, y, start, n_train), val, resume_from,
               resolve_device(cfg.device), dataset.standardization)


def resolve_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    ok, reason = cuda_available()
    if device == "cuda" and not ok:
        raise InputError(f"--device cuda: no usable GPU ({reason})")
    return "cuda" if ok else "cpu"
