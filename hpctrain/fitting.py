"""`fit`: train on in-memory arrays, on one rank or under `mpiexec -n P python script.py`.

    model = hpctrain.fit(X, y, hidden=(64,), epochs=20)
    model.predict(X_new); model.evaluate(X_test, y_test); model.save("model.h5")

Under mpiexec each rank passes its OWN rows (any split, uneven is fine): the step buffer sums
gradients and counts over the ranks, so the update is the mean over all rows, exactly as if one
process held them all. The ranks agree on the feature count and the task; rows are numbered
across ranks in rank order, so `shuffle="global"` with a `global_batch` trains the same model
(to float rounding) whatever the rank count. It runs the very loop `hpctrain train` runs
(hpctrain.trainer), without a run directory: nothing is written until `save`.
"""

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from . import checkpoint as ckpt
from .config import TrainConfig, parse_hidden
from .errors import InputError
from .failures import abort_on_failure, collective_check
from .model import MLP
from .predict import standardize
from .rundir import config_record
from .startup import RankRows
from .trainer import Trainer
from .world import root_warning, world

TASKS = ("binary", "multiclass", "regression")


def fit(X, y, *, hidden=(64,), epochs: int = 5, task: str | None = None, comm=None,
        **options) -> "FittedModel":
    """Train an MLP on this rank's rows (X: (n, features), y: labels or targets).

    task: "binary" | "multiclass" | "regression"; by default integer labels 0..C-1 give
    binary (C = 2) or multiclass, other numbers regression. options: any TrainConfig field
    (lr, optimizer, batch_size, global_batch, shuffle, activation, seed, allreduce, ...).
    """
    comm = world() if comm is None else comm
    X, y, local = collective_check(comm, _local_view, X, y, task)
    features, task, classes, start, n_total = collective_check(
        comm, _agree, comm, X.shape[1], local, task, len(X))
    cfg = collective_check(comm, _config, hidden, epochs, options)
    model = MLP(features, cfg.hidden, cfg.activation, task, classes)
    y = y.astype(np.float32 if task == "regression" else np.int32)
    with abort_on_failure(comm):
        trainer = Trainer(cfg, comm, model, RankRows(X, y, start, n_total))
        summary = trainer.run()
        params = trainer.engine.params_host().copy()
        state = trainer.engine.optimizer_state()
    return FittedModel(model, params, comm, cfg, state, summary)


def _config(hidden, epochs, options) -> TrainConfig:
    cfg = TrainConfig.from_dict({**options, "hidden": parse_hidden(hidden), "epochs": epochs})
    for name in ("data", "out", "resume", "force"):
        if getattr(cfg, name):
            raise InputError(f"fit takes arrays and writes nothing: {name!r} is not an option "
                             f"here (use hpctrain.train with a TrainConfig)")
    cfg.validate()
    return cfg


def _local_view(X, y, task):
    """(X as float32 (n, f), y as a 1-D array, this rank's facts for the agreement)."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
        raise InputError(f"X must be a 2-D numeric array, got {X.dtype} of shape {X.shape}")
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.number):
        raise InputError(f"y must be {X.shape[0]} numbers (one per row), got {y.dtype} of "
                         f"shape {y.shape}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise InputError("X and y must be finite (NaN or Inf found)")
    if task is not None and task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    whole = bool(np.all(y == np.round(y))) if y.size else True
    if task in ("binary", "multiclass") and not whole:
        raise InputError(f"a {task} task needs whole-number labels")
    if whole and y.size and y.min() < 0 and task != "regression":
        raise InputError("class labels must be 0, 1, ..., C-1 (a negative label was found)")
    top = int(y.max()) if y.size and whole else -1
    return np.ascontiguousarray(X, dtype=np.float32), y, (whole, top)


def _agree(comm, features: int, local, task, rows: int):
    """(features, task, classes, this rank's first row, rows in all), the same on every rank."""
    whole, top = local
    table = comm.allgather((features, whole, top, rows))
    widths = {t[0] for t in table if t[3] > 0} or {features}
    if len(widths) > 1:
        raise InputError(f"ranks pass rows of different widths: {sorted(widths)} features")
    n_total = sum(t[3] for t in table)
    if n_total == 0:
        raise InputError("no training rows on any rank")
    if task is None:
        task = "regression" if not all(t[1] for t in table) else (
            "binary" if max(t[2] for t in table) <= 1 else "multiclass")
    classes = 0 if task == "regression" else max(2, max(t[2] for t in table) + 1)
    if task == "binary" and classes != 2:
        raise InputError(f"binary labels must be 0 or 1, found labels up to {classes - 1}")
    start = sum(t[3] for t in table[:comm.Get_rank()])
    return widths.pop(), task, classes, start, n_total


@dataclass
class FittedModel:
    """A trained model: its parameters (identical on every rank) and how it was trained."""

    model: MLP
    params: np.ndarray
    comm: object
    config: TrainConfig
    optimizer_state: dict
    summary: dict | None = None

    def predict_proba(self, X) -> np.ndarray:
        """binary: P(y = 1) (n,); multiclass: (n, C) probabilities; regression: values.
        Raw rows: a model trained on a standardized dataset applies its standardization."""
        return self.model.predict(self.params, self._inputs(X))

    def predict(self, X) -> np.ndarray:
        """Class labels (classification) or values (regression) for these rows (local)."""
        out = self.predict_proba(X)
        if self.model.task == "binary":
            return (out >= 0.5).astype(np.int32)
        if self.model.task == "multiclass":
            return out.argmax(axis=1).astype(np.int32)
        return out

    def evaluate(self, X, y) -> dict:
        """{"loss", "accuracy" (None for regression), "rows"} over every rank's rows:
        collective under mpiexec (each rank passes its own rows)."""
        loss, correct = self.model.evaluate(self.params, self._inputs(X), y)
        sums = np.array([loss, correct, len(y)], dtype=np.float64)
        self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        rows = int(sums[2])
        accuracy = None if self.model.task == "regression" else sums[1] / max(rows, 1)
        return {"loss": sums[0] / max(rows, 1), "accuracy": accuracy, "rows": rows}

    def _inputs(self, X) -> np.ndarray:
        """Raw rows, standardized as the training data was (when it was)."""
        return standardize(np.asarray(X, dtype=np.float32), {"extra": self.config.extra})

    def save(self, path) -> None:
        """A checkpoint `hpctrain evaluate` and `predict` load. Collective: every rank calls
        it, rank 0 writes the file, and it exists when any rank returns."""
        if self.comm.Get_rank() == 0:
            ckpt.write(path, self.model, self.params, self.optimizer_state,
                       step=self.optimizer_state["step"], config=config_record(self.config))
        self.comm.Barrier()  # the file exists on return, on every rank


def load(path, comm=None) -> FittedModel:
    """A checkpoint (from `hpctrain train` or `save`; a file, a run directory or its
    checkpoints/) as a FittedModel, for inference."""
    comm = world() if comm is None else comm
    state = ckpt.open_checkpoint(path, warn=root_warning(comm))
    config = TrainConfig.from_dict({k: v for k, v in state.config.items()
                                    if k in TrainConfig.__dataclass_fields__})
    model = MLP.from_spec(state.model_spec)
    return FittedModel(model, state.params, comm, config, state.optimizer_state)
