"""Evaluate a checkpoint on a dataset split: each rank its own rows, one reduction."""

import numpy as np
from mpi4py import MPI

from . import checkpoint as ckpt
from . import eval_metrics
from .data import open_dataset
from .errors import InputError
from .failures import collective_check
from .model import MLP
from .predict import class_names
from .world import root_warning


def load_for_dataset(data, checkpoint, split, comm):
    """Every input check of `evaluate`, on every rank: the checkpoint must fit the dataset.
    Returns the model, its parameters, this rank's rows and the class names (or None)."""
    dataset, state, model = open_for_dataset(data, checkpoint, split, comm)
    X, y = dataset.read_rank(split, comm.Get_rank(), comm.Get_size())
    names = None
    if model.task != "regression":
        names = class_names(state.config.get("extra", {}) or {}, model.classes, state.path,
                            root_warning(comm))
    return model, state.params, X, y, names


def open_for_dataset(data, checkpoint, split, comm):
    """(dataset, checkpoint state, model), once the checkpoint is known to fit the dataset
    and the split to exist: InputError naming the file otherwise."""
    dataset = open_dataset(data)
    state = ckpt.open_checkpoint(checkpoint, warn=root_warning(comm))
    model = MLP.from_spec(state.model_spec)
    spec = state.model_spec
    if spec["features"] != dataset.features or spec["task"] != dataset.task:
        raise InputError(f"checkpoint is for {spec['task']} data with {spec['features']} "
                         f"features, but the dataset is {dataset.task} with "
                         f"{dataset.features}", checkpoint)
    if split not in dataset.splits:
        raise InputError(f"dataset has no split {split!r} (it has "
                         f"{', '.join(dataset.splits)})", data)
    return dataset, state, model


def evaluate_checkpoint(comm, data, checkpoint, split) -> dict | None:
    model, params, X, y, names = collective_check(comm, load_for_dataset, data, checkpoint,
                                                  split, comm)
    loss, correct = model.evaluate(params, X, y)
    sums = np.array([loss, correct, len(y)], dtype=np.float64)
    comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
    regression = model.spec()["task"] == "regression"
    if regression:
        extra = {"r2": eval_metrics.r_squared(comm, model, params, X, y)}
    else:
        extra = eval_metrics.classification(comm, model, params, X, y, names)
    if comm.Get_rank() != 0:
        return None
    rows = int(sums[2])
    return {"split": split, "rows": rows, "loss": sums[0] / max(rows, 1),
            "accuracy": None if regression else sums[1] / max(rows, 1),
            "checkpoint": str(checkpoint), **extra}
