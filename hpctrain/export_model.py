"""What `hpctrain export` writes out of a checkpoint, whatever the format: the model, its
parameters layer by layer, the training data's standardization and the recorded names.

Formats (export_onnx.py, export_safetensors.py) need packages of the `export` extra; they
are imported only by the export that uses them, and a missing one is one line (exit 2).
"""

import importlib
from dataclasses import dataclass

import numpy as np

from . import checkpoint as ckpt
from .errors import InputError
from .model import MLP
from .predict import class_names, recorded_names
from .world import print_stderr


@dataclass
class Exported:
    path: str  # the checkpoint's file
    model: MLP
    layers: list  # [(W (in, out), b (out,)), ...] float32
    mean: np.ndarray | None  # raw rows in: (x - mean) / std before the first layer
    std: np.ndarray | None
    feature_names: list | None
    class_names: list | None
    step: int


def load_exported(checkpoint, warn=print_stderr) -> Exported:
    """The checkpoint (a file, a run directory or its checkpoints/) as an Exported."""
    state = ckpt.open_checkpoint(checkpoint, warn)
    model = MLP.from_spec(state.model_spec)
    extra = state.config.get("extra", {}) or {}
    stats = extra.get("standardization")
    mean = std = None
    if stats:
        mean, std = _standardization(stats, model.features, state.path)
    classes = None
    if model.task != "regression":
        classes = class_names(extra, model.classes, state.path, warn)
    layers = [(W.copy(), b.copy()) for W, b in model.views(state.params)]
    return Exported(state.path, model, layers, mean, std,
                    recorded_names(extra, "feature_names", model.features, state.path),
                    classes, state.step)


def _standardization(stats, features: int, path):
    """(mean, std) float32 from the checkpoint's config, checked: it is untrusted input."""
    try:
        mean = np.asarray(stats["mean"], dtype=np.float32)
        std = np.asarray(stats["std"], dtype=np.float32)
    except (KeyError, TypeError, ValueError):
        mean = std = np.zeros(0, dtype=np.float32)
    if (mean.shape != (features,) or std.shape != (features,) or not np.isfinite(mean).all()
            or not np.isfinite(std).all() or not (std > 0).all()):
        raise InputError(f"checkpoint's standardization is not {features} finite means and "
                         f"stds > 0 (corrupted config?)", path)
    return mean, std


def require(module: str):
    """An optional package of the `export` extra, or InputError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"the {module.split('.')[0]} package is missing: "
                         f"pip install 'hpctrain[export]'") from None
