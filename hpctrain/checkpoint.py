"""Checkpoints: one HDF5 file per save, written atomically, verified on load.

Layout: /params/layer{l}/W, /params/layer{l}/b (the flat buffer cut into layers, so the file is
readable by any HDF5 tool), /optimizer/<buffer>, and attributes: format, step, epoch,
step_in_epoch, model (JSON spec), optimizer (JSON: name, step), rng (JSON: the seed and position
from which every shuffle is derived), config (JSON), checksum (sha256 over all of the above).

A checkpoint is written to a temporary name in the same directory, flushed, fsynced and renamed,
so a crash never leaves a half-written file where a good one was.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass

import numpy as np

from .atomic import replacing, writing
from .errors import InputError
from .model import MLP

FORMAT = "hpctrain-checkpoint-1"
NAME = re.compile(r"^step-(\d+)\.h5$")


@dataclass
class Checkpoint:
    path: str
    model_spec: dict
    params: np.ndarray
    optimizer_state: dict
    step: int
    epoch: int
    step_in_epoch: int
    rng: dict
    config: dict


def checkpoint_path(run_dir, step: int) -> str:
    return os.path.join(run_dir, "checkpoints", f"step-{step:08d}.h5")


def _checksum(meta: dict, arrays: list) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name, array in arrays:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _flatten(model, params, optimizer_state):
    """(name, array) pairs in a fixed order: the checksummed content."""
    arrays = []
    for l, (W, b) in enumerate(model.views(params)):
        arrays += [(f"params/layer{l}/W", W), (f"params/layer{l}/b", b)]
    for name in sorted(optimizer_state.get("buffers", {})):
        arrays.append((f"optimizer/{name}", optimizer_state["buffers"][name]))
    return arrays


def save(run_dir, model, params, optimizer_state, step, epoch, step_in_epoch, rng, config):
    """Write the run's checkpoints/step-NNNNNNNN.h5 atomically; return its path."""
    path = checkpoint_path(run_dir, step)
    with writing(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    write(path, model, params, optimizer_state, step, epoch, step_in_epoch, rng, config)
    return path


def write(path, model, params, optimizer_state, step=0, epoch=0, step_in_epoch=0, rng=None,
          config=None) -> None:
    """Write one checkpoint file atomically (hpctrain.atomic: a crash never leaves a
    half-written file where a good one was)."""
    import h5py  # heavy; only the commands that write or read checkpoints need it

    meta = {"format": FORMAT, "step": int(step), "epoch": int(epoch),
            "step_in_epoch": int(step_in_epoch), "model": model.spec(),
            "optimizer": {"name": optimizer_state["name"], "step": int(optimizer_state["step"])},
            "rng": rng or {}, "config": config or {}}
    arrays = _flatten(model, params, optimizer_state)
    with replacing(path) as tmp:
        try:
            with h5py.File(tmp, "w") as f:
                for key, array in arrays:
                    f.create_dataset(key, data=array)
                for key, value in meta.items():
                    f.attrs[key] = value if isinstance(value, (int, str)) else json.dumps(value)
                f.attrs["checksum"] = _checksum(meta, arrays)
        except RuntimeError as err:
            # h5py failing to close a file whose write failed (disk full): the OSError
            # behind it is what to report.
            if isinstance(err.__context__, OSError):
                raise err.__context__ from None
            raise


def load(path, model=None) -> Checkpoint:
    """Read and verify a checkpoint; InputError if unreadable, corrupted or another model's."""
    import h5py  # heavy; only the commands that write or read checkpoints need it

    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            if attrs.get("format") != FORMAT:
                raise InputError(f"not an hpctrain checkpoint (format {attrs.get('format')!r})",
                                 path)
            meta = {k: attrs[k] if k in ("format", "step", "epoch", "step_in_epoch")
                    else json.loads(attrs[k])
                    for k in ("format", "step", "epoch", "step_in_epoch", "model", "optimizer",
                              "rng", "config")}
            meta = {k: int(v) if k in ("step", "epoch", "step_in_epoch") else v
                    for k, v in meta.items()}
            stored = MLP.from_spec(meta["model"])
            params = np.zeros(stored.n_params, dtype=np.float32)
            for l, (W, b) in enumerate(stored.views(params)):
                W[...] = f[f"params/layer{l}/W"][...]
                b[...] = f[f"params/layer{l}/b"][...]
            buffers = {name: f[f"optimizer/{name}"][...] for name in f.get("optimizer", {})}
            checksum = attrs["checksum"]
    except InputError as err:  # e.g. a model spec that no model fits: name the file
        raise InputError(err.message, err.path or path) from None
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise InputError(f"unreadable or corrupted checkpoint ({err})", path) from None
    optimizer_state = {**meta["optimizer"], "buffers": buffers}
    if _checksum(meta, _flatten(stored, params, optimizer_state)) != checksum:
        raise InputError("checkpoint fails its checksum (corrupted)", path)
    if model is not None and stored.spec() != model.spec():
        raise InputError(f"checkpoint is of another model: {describe(stored.spec())}, "
                         f"not {describe(model.spec())}", path)
    return Checkpoint(path, meta["model"], params, optimizer_state, meta["step"], meta["epoch"],
                      meta["step_in_epoch"], meta["rng"], meta["config"])


def describe(spec: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(spec.items()))


def list_checkpoints(run_dir) -> list:
    """Checkpoint paths of a run, newest first."""
    folder = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(folder) if (m := NAME.match(name))]
    return [os.path.join(folder, name) for _, name in sorted(found, reverse=True)]


def prune(run_dir, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints of a run."""
    for path in list_checkpoints(run_dir)[keep:]:
        with writing(path):
            os.unlink(path)


def newest_good(run_dir, model, warn=print) -> Checkpoint:
    """The newest checkpoint that verifies; bad ones are named and skipped, never used."""
    paths = list_checkpoints(run_dir)
    for path in paths:
        try:
            return load(path, model)
        except InputError as err:
            if "another model" in err.message:
                raise
            warn(f"hpctrain: warning: skipping {err}")
    raise InputError("--resume: no good checkpoint to resume from", os.path.join(run_dir,
                                                                               "checkpoints"))
