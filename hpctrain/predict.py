"""Predictions of a checkpoint for new rows given as .csv or .npy."""

import csv
import os

import numpy as np

from . import checkpoint as ckpt
from .atomic import replacing
from .errors import InputError
from .model import MLP


def read_features(path, features: int) -> np.ndarray:
    if not os.path.exists(path):
        raise InputError("input file not found", path)
    if path.endswith(".npy"):
        try:
            X = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"not a readable .npy file ({err})", path) from None
    elif path.endswith(".csv"):
        X = read_csv(path)
    else:
        raise InputError("input must be .csv or .npy", path)
    if X.ndim == 1 and features == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != features:
        raise InputError(f"expected rows of {features} features, got shape {X.shape}", path)
    if not np.issubdtype(X.dtype, np.number) or not np.isfinite(X).all():
        raise InputError("features must be finite numbers", path)
    return np.ascontiguousarray(X, dtype=np.float32)


def read_csv(path) -> np.ndarray:
    """Numeric CSV; a first line that is not numeric is taken as a header."""
    rows = []
    with open(path, newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            try:
                rows.append([float(v) for v in row])
            except ValueError:
                if line_no == 1:
                    continue
                raise InputError(f"line {line_no}: non-numeric value", path) from None
    if not rows:
        raise InputError("no rows", path)
    if len({len(r) for r in rows}) != 1:
        raise InputError("rows have different numbers of columns", path)
    return np.array(rows, dtype=np.float64)


def predict_file(checkpoint, input_path, out, force=False) -> int:
    if os.path.exists(out) and not force:
        raise InputError("output exists; use --force to replace it", out)
    if not (out.endswith(".npy") or out.endswith(".csv")):
        raise InputError("output must be .csv or .npy", out)
    state = ckpt.load(checkpoint)
    model = MLP.from_spec(state.model_spec)
    X = read_features(input_path, state.model_spec["features"])
    X = standardize(X, state.config)
    predictions = np.asarray(model.predict(state.params, X))
    with replacing(out) as tmp, open(tmp, "wb") as f:
        if out.endswith(".npy"):
            np.save(f, predictions)
        else:
            table = predictions if predictions.ndim == 2 else predictions[:, None]
            np.savetxt(f, table, delimiter=",", fmt="%.7g")
    return len(X)


def standardize(X, config: dict) -> np.ndarray:
    """Apply the training data's standardization, recorded in the checkpoint: raw rows in."""
    stats = config.get("extra", {}).get("standardization")
    if not stats:
        return X
    mean = np.asarray(stats["mean"], dtype=np.float32)
    std = np.asarray(stats["std"], dtype=np.float32)
    return np.ascontiguousarray((X - mean) / std, dtype=np.float32)
