"""`hpctrain export --format safetensors`: the parameters, without pickle, for any framework.

Tensors (float32): `layer{l}.weight` (fan_in, fan_out) — the layout of the checkpoint, so
y = x @ W + b —, `layer{l}.bias` (fan_out,), and `standardization.mean` / `.std`
(features,) when the model takes raw rows. The header's metadata (strings) holds the format,
the model (JSON: features, hidden, activation, task, classes), the step, and the recorded
feature and class names (JSON, null when none).
"""

import json

import numpy as np

from .atomic import replacing
from .export_model import Exported, require

FORMAT = "hpctrain-safetensors-1"


def tensors(exported: Exported) -> dict:
    found = {}
    for l, (W, b) in enumerate(exported.layers):
        found[f"layer{l}.weight"] = np.ascontiguousarray(W, dtype=np.float32)
        found[f"layer{l}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    if exported.mean is not None:
        found["standardization.mean"] = exported.mean
        found["standardization.std"] = exported.std
    return found


def metadata(exported: Exported) -> dict:
    return {"format": FORMAT, "model": json.dumps(exported.model.spec()),
            "step": str(exported.step), "feature_names": json.dumps(exported.feature_names),
            "label_names": json.dumps(exported.class_names)}


def write_safetensors(exported: Exported, out) -> None:
    save_file = require("safetensors.numpy").save_file
    with replacing(out) as tmp:
        save_file(tensors(exported), tmp, metadata=metadata(exported))
