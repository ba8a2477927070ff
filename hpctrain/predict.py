"""Predictions of a checkpoint for new rows given as .csv or .npy.

Input (predict_input.py): a CSV's columns are matched by the names the training data recorded,
in any order; positional columns are exactly how a reordered file gives wrong answers without
a word, so a CSV without a header is refused when names are known.

Output: a .csv has a header row: `prediction` (the class: its original name when the dataset
recorded `label_names`, else its id; the value for regression), then for classification one
probability column per class, `p_<class>` (binary: both `p_<class 0>` and `p_<class 1>`).
An .npy output holds the model's array: binary P(class 1) (n,), multiclass (n, C)
probabilities, regression (n,) values. The output is written atomically, and only once the
whole input has been read and checked: bad input leaves no output file.
"""

import csv
import os

import numpy as np

from . import checkpoint as ckpt
from .atomic import replacing
from .errors import InputError
from .model import MLP
from .predict_input import read_features
from .world import print_stderr


def predict_file(checkpoint, input_path, out, force=False, warn=print_stderr) -> int:
    """Write the predictions for the rows of `input_path`; returns the row count.
    `checkpoint`: a checkpoint file, a run directory or its checkpoints/ folder."""
    check_output_path(out, force, (".csv", ".npy"))
    state = ckpt.open_checkpoint(checkpoint, warn)
    model = MLP.from_spec(state.model_spec)
    extra = state.config.get("extra", {}) or {}
    feature_names = recorded_names(extra, "feature_names", model.features, state.path)
    label = extra.get("label_name") if feature_names else None
    X = read_features(input_path, model.features, feature_names, label, warn)
    X = standardize(X, state.config)
    predictions = np.asarray(model.predict(state.params, X))
    classes = None
    if model.task != "regression":
        classes = class_names(extra, model.classes, state.path, warn)
    with replacing(out) as tmp:
        if out.endswith(".npy"):
            with open(tmp, "wb") as f:
                np.save(f, predictions)
        else:
            with open(tmp, "w", newline="") as f:
                write_table(f, predictions, model.task, classes)
    return len(X)


def check_output_path(out, force: bool, suffixes) -> None:
    """An output path we may write: a known suffix, an existing folder, not there already
    (unless `force`); else InputError naming it (exit 2 before anything is written)."""
    if os.path.exists(out) and not force:
        raise InputError("output exists; use --force to replace it", out)
    if not out.endswith(tuple(suffixes)):
        raise InputError(f"output must be {' or '.join(suffixes)}", out)
    folder = os.path.dirname(out) or "."
    if not os.path.isdir(folder):  # a typo in the path, not a failing disk: exit 2
        raise InputError(f"no such folder {folder!r} for the output", out)


def recorded_names(extra: dict, key: str, count: int, path):
    """A list of `count` names recorded in the checkpoint, or None if it has none."""
    names = extra.get(key)
    if names is None:
        return None
    if (not isinstance(names, list) or len(names) != count
            or not all(isinstance(n, str) for n in names) or len(set(names)) != count):
        raise InputError(f"checkpoint's {key} are not {count} distinct names (corrupted "
                         f"config?)", path)
    return names


def class_names(extra: dict, classes: int, path, warn):
    """The original class names (index = class id) when recorded, else None (ids)."""
    names = extra.get("label_names")
    if names is None:
        return None
    if (isinstance(names, list) and len(names) == classes
            and len({str(n) for n in names}) == classes):
        return [str(n) for n in names]
    warn(f"hpctrain: warning: {path}: the recorded label_names do not fit the model's "
         f"{classes} classes; writing class ids")
    return None


def write_table(f, predictions, task: str, classes=None) -> None:
    """The CSV output: a header, then one row per input row (see the module's docstring)."""
    w = csv.writer(f, lineterminator="\n")
    w.writerow(table_header(task, classes, 2 if predictions.ndim == 1 else
                            predictions.shape[1]))
    w.writerows(table_rows(predictions, task, classes))


def table_header(task: str, classes, count: int) -> list:
    """The CSV header: `prediction`, then `p_<class>` for each of `count` classes."""
    if task == "regression":
        return ["prediction"]
    names = classes or [str(k) for k in range(count)]
    return ["prediction", *(f"p_{name}" for name in names)]


def table_rows(predictions, task: str, classes=None) -> list:
    """The CSV rows of `predictions` (no header), as lists of strings."""
    if task == "regression":
        return [[_fmt(v)] for v in predictions.tolist()]
    if task == "binary":
        p1 = predictions.astype(np.float32)
        probs = np.column_stack([np.float32(1) - p1, p1])
        ids = (p1 >= 0.5).astype(np.int64)
    else:
        probs = predictions
        ids = predictions.argmax(axis=1)
    labels = classes or list(range(probs.shape[1]))
    return [[labels[k], *map(_fmt, row)] for k, row in zip(ids.tolist(), probs.tolist(),
                                                            strict=True)]


def _fmt(value: float) -> str:
    return f"{value:.9g}"  # float32 values round-trip exactly


def standardize(X, config: dict) -> np.ndarray:
    """Apply the training data's standardization, recorded in the checkpoint: raw rows in."""
    stats = config.get("extra", {}).get("standardization")
    if not stats:
        return X
    mean = np.asarray(stats["mean"], dtype=np.float32)
    std = np.asarray(stats["std"], dtype=np.float32)
    return np.ascontiguousarray((X - mean) / std, dtype=np.float32)
