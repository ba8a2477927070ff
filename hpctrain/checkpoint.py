"""Checkpoints: one HDF5 file per save, written atomically, verified before it is parsed.

Layout: /params/layer{l}/W, /params/layer{l}/b (the flat buffer cut into layers, so the file is
readable by any HDF5 tool), /optimizer/<buffer>, and attributes: format, step, epoch,
step_in_epoch, model (JSON spec), optimizer (JSON: name, step), rng (JSON: the seed and position
from which every shuffle is derived), config (JSON). The file's first 512 bytes (HDF5's user
block) hold the sha256 of all the rest (hpctrain.sealed), checked before HDF5 reads a byte:
a damaged file is refused, never parsed. Format-1 files (no seal, a checksum attribute over
the content) still load, checked after parsing.

A checkpoint is written to a temporary name in the same directory, flushed, fsynced and renamed,
so a crash never leaves a half-written file where a good one was. Whatever goes wrong while
loading one is "corrupted": `--resume` falls back to the previous one, `evaluate` and `predict`
exit 2 naming the file.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass

import numpy as np

from . import sealed
from .atomic import replacing, writing
from .errors import InputError
from .model import MLP

FORMAT = "hpctrain-checkpoint-2"
LEGACY = "hpctrain-checkpoint-1"  # unsealed; its checksum attribute is checked after parsing
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


def _legacy_checksum(meta: dict, arrays: list) -> str:
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
            with h5py.File(tmp, "w", userblock_size=sealed.USERBLOCK) as f:
                for key, array in arrays:
                    f.create_dataset(key, data=array)
                for key, value in meta.items():
                    f.attrs[key] = value if isinstance(value, (int, str)) else json.dumps(value)
        except RuntimeError as err:
            # h5py failing to close a file whose write failed (disk full): the OSError
            # behind it is what to report.
            if isinstance(err.__context__, OSError):
                raise err.__context__ from None
            raise
        sealed.seal(tmp)


def load(path, model=None) -> Checkpoint:
    """Read and verify a checkpoint; InputError if unreadable, corrupted or another model's."""
    legacy = _check_seal(path)
    try:
        state = _read(path, legacy)
    except InputError as err:  # e.g. a model spec that no model fits: name the file
        raise InputError(err.message, err.path or path) from None
    except Exception as err:  # noqa: BLE001 -- whatever HDF5 or the JSON make of it
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"unreadable or corrupted checkpoint ({why})", path) from None
    stored = MLP.from_spec(state.model_spec)
    if model is not None and stored.spec() != model.spec():
        raise InputError(f"checkpoint is of another model: {describe(stored.spec())}, "
                         f"not {describe(model.spec())}", path)
    return state


def _check_seal(path) -> bool:
    """Check the seal before any parser sees the file; True for an unsealed format-1 file."""
    try:
        sealed.check(path)
        return False
    except sealed.Unsealed:
        return True
    except sealed.Broken as err:
        raise InputError(f"checkpoint {err}", path) from None
    except OSError as err:
        raise InputError(f"cannot read checkpoint ({os.strerror(err.errno or 0)})",
                         path) from None


def _read(path, legacy: bool) -> Checkpoint:
    import h5py  # heavy; only the commands that write or read checkpoints need it

    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        if attrs.get("format") != (LEGACY if legacy else FORMAT):
            raise InputError(f"not an hpctrain checkpoint (format {attrs.get('format')!r})",
                             path)
        meta = {k: json.loads(attrs[k]) for k in ("model", "optimizer", "rng", "config")}
        meta.update({k: int(attrs[k]) for k in ("step", "epoch", "step_in_epoch")},
                    format=attrs["format"])
        stored = MLP.from_spec(meta["model"])
        arrays = _expected_arrays(stored, f)  # shapes checked before anything is allocated
        params = np.zeros(stored.n_params, dtype=np.float32)
        for name, view in _flatten(stored, params, {}):
            view[...] = f[name][...]
        buffers = {name.split("/", 1)[1]: f[name][...] for name, _ in arrays
                   if name.startswith("optimizer/")}
        optimizer_state = {**meta["optimizer"], "buffers": buffers}
        if legacy and _legacy_checksum(meta, _flatten(stored, params, optimizer_state)) != \
                attrs["checksum"]:
            raise InputError("checkpoint fails its checksum (corrupted)", path)
    return Checkpoint(path, meta["model"], params, optimizer_state, meta["step"], meta["epoch"],
                      meta["step_in_epoch"], meta["rng"], meta["config"])


def _expected_arrays(model, f) -> list:
    """[(name, shape)] of the file's arrays, in _flatten's order, after checking that each
    has the shape the stored model spec implies and that its bytes are really in the file:
    a spec claiming 10^9 hidden units is refused here, not by a MemoryError."""
    expected = []
    for l, (i, o) in enumerate(model.layer_shapes):
        expected += [(f"params/layer{l}/W", (i, o)), (f"params/layer{l}/b", (o,))]
    expected += [(f"optimizer/{name}", (model.n_params,)) for name in sorted(f.get("optimizer",
                                                                                   {}))]
    for name, shape in expected:
        if name not in f or not hasattr(f[name], "shape"):
            raise InputError(f"checkpoint lacks {name} for its model ({describe(model.spec())})")
        data = f[name]
        if data.shape != shape or data.dtype != np.float32:
            raise InputError(f"checkpoint's {name} is {data.dtype}{list(data.shape)}, but its "
                             f"model needs float32{list(shape)}")
        if data.id.get_storage_size() != data.size * 4:
            raise InputError(f"checkpoint's {name} does not hold its {data.size} values")
    return expected


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


def open_checkpoint(path, warn=print) -> Checkpoint:
    """What `--checkpoint PATH` names: a checkpoint file, a run directory or its checkpoints/
    folder (then the newest good checkpoint in it, bad ones named and skipped)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise InputError("checkpoint not found", path)
        return load(path)
    run_dir = os.path.dirname(os.path.abspath(path)) if _is_checkpoints_folder(path) else path
    if not list_checkpoints(run_dir):
        raise InputError("no checkpoint here (expected a step-NNNNNNNN.h5 file, a run "
                         "directory or its checkpoints/)", path)
    return newest_good(run_dir, None, warn=warn)


def _is_checkpoints_folder(path) -> bool:
    return os.path.basename(os.path.normpath(path)) == "checkpoints"


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
    raise InputError(f"no good checkpoint: all {len(paths)} failed their checks",
                     os.path.join(run_dir, "checkpoints"))
