"""The on-disk format of a dataset: names, the manifest's schema, and checksums.

A dataset is a directory holding `manifest.json` and one folder of HDF5 shards per split
(docs/DATA.md). Everything that knows what the manifest looks like lives here, so the writer,
the reader and the verifier cannot disagree about it.
"""

import hashlib
import json
import math
import os
import re

from ..errors import InputError

FORMAT_NAME = "hpctrain-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DTYPE = "float32"
TASKS = ("binary", "multiclass", "regression")
# Splits are listed in this order; any other split name sorts after them.
SPLIT_ORDER = ("train", "val", "test")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def label_dtype(task: str) -> str:
    """Classification labels are int32 class indices; regression targets are float32."""
    return "float32" if task == "regression" else "int32"


def shard_file(split: str, index: int) -> str:
    """A shard's path relative to the dataset directory (always with '/')."""
    return f"{split}/shard-{index:05d}.h5"


def ordered_splits(names) -> tuple:
    known = [s for s in SPLIT_ORDER if s in names]
    return tuple(known + sorted(s for s in names if s not in SPLIT_ORDER))


def sha256_file(path, block=1 << 18) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(block)  # reused: reading a big shard allocates nothing per block
    view = memoryview(buffer)
    with open(path, "rb") as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def write_manifest(directory, manifest: dict) -> None:
    path = os.path.join(directory, MANIFEST)
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def read_manifest(directory) -> dict:
    """Load and validate `DIR/manifest.json`; InputError naming the file otherwise."""
    if not os.path.isdir(directory):
        what = "not a directory" if os.path.exists(directory) else "no such dataset directory"
        raise InputError(what, path=directory)
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise InputError("missing manifest (not an hpctrain dataset?)", path=path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON (line {err.lineno}): {err.msg}", path=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read manifest: {err}", path=path) from None
    validate_manifest(doc, path)
    return doc


def validate_manifest(doc, path) -> None:
    """Check the manifest's schema; every error names the manifest file."""

    def fail(message):
        raise InputError(message, path=path)

    if not isinstance(doc, dict):
        fail("manifest is not a JSON object")
    if doc.get("format") != FORMAT_NAME:
        fail(f"not an {FORMAT_NAME} manifest (format is {doc.get('format')!r})")
    if doc.get("version") != FORMAT_VERSION:
        fail(f"manifest version {doc.get('version')!r} is not supported "
             f"(this hpctrain reads version {FORMAT_VERSION})")
    for key in ("task", "features", "classes", "dtype", "splits"):
        if key not in doc:
            fail(f"manifest has no {key!r}")
    task, classes = doc["task"], doc["classes"]
    if task not in TASKS:
        fail(f"unknown task {task!r} (expected one of {', '.join(TASKS)})")
    if not _is_int(doc["features"], 1):
        fail(f"features must be a positive integer, got {doc['features']!r}")
    if not _classes_fit(task, classes):
        fail(f"classes {classes!r} does not fit task {task!r} "
             "(binary: 2, multiclass: >= 2, regression: 0)")
    if doc["dtype"] != DTYPE:
        fail(f"dtype must be {DTYPE!r}, got {doc['dtype']!r}")
    _validate_splits(doc["splits"], fail)
    if "standardization" in doc:
        _validate_standardization(doc["standardization"], doc["features"], fail)
    if "extra" in doc:
        _validate_extra(doc["extra"], task, classes, fail)


def _is_int(value, minimum) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _classes_fit(task, classes) -> bool:
    if not _is_int(classes, 0):
        return False
    return {"binary": classes == 2, "multiclass": classes >= 2, "regression": classes == 0}[task]


def _validate_splits(splits, fail) -> None:
    if not isinstance(splits, dict) or not splits:
        fail("manifest has no splits")
    for name, split in splits.items():
        if not _SPLIT_NAME.match(name):
            fail(f"bad split name {name!r}")
        if not isinstance(split, dict) or not _is_int(split.get("rows"), 1):
            fail(f"split {name!r}: rows must be a positive integer")
        shards = split.get("shards")
        if not isinstance(shards, list) or not shards:
            fail(f"split {name!r} has no shards")
        for shard in shards:
            _validate_shard(name, shard, fail)
        total = sum(s["rows"] for s in shards)
        if total != split["rows"]:
            fail(f"split {name!r}: shards hold {total} rows, the split says {split['rows']}")


def _validate_shard(split, shard, fail) -> None:
    if not isinstance(shard, dict):
        fail(f"split {split!r}: a shard entry is not an object")
    file = shard.get("file")
    # Shard paths stay inside the dataset directory: relative, no '..' anywhere.
    if (not isinstance(file, str) or not file or file.startswith("/")
            or ".." in file.split("/") or "\\" in file):
        fail(f"split {split!r}: bad shard file name {file!r}")
    if not _is_int(shard.get("rows"), 1):
        fail(f"{file}: shard rows must be a positive integer")
    if not isinstance(shard.get("sha256"), str) or not _SHA256.match(shard["sha256"]):
        fail(f"{file}: sha256 must be 64 lowercase hex digits")


def _validate_standardization(std, features, fail) -> None:
    """mean and std lists of `features` finite numbers, std > 0: X = (raw - mean) / std must
    be computable (Python's json reads NaN and Infinity, so they are looked for)."""
    ok = (isinstance(std, dict)
          and all(isinstance(std.get(k), list) and len(std[k]) == features
                  for k in ("mean", "std")))
    if not ok:
        fail(f"standardization must hold 'mean' and 'std' lists of {features} numbers, std > 0")
    for key in ("mean", "std"):
        for i, value in enumerate(std[key]):
            if not _is_number(value) or not math.isfinite(value):
                fail(f"standardization: {key}[{i}] is {json.dumps(value)}, not a finite "
                     "number")
            if key == "std" and value <= 0:
                fail(f"standardization: std[{i}] is {value!r}, not > 0")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_extra(extra, task, classes, fail) -> None:
    """`extra.label_names` (import --label-map auto): one distinct string per class id."""
    if not isinstance(extra, dict):
        fail("extra must be a JSON object")
    if "label_names" not in extra:
        return
    names = extra["label_names"]
    if (task == "regression" or not isinstance(names, list) or len(names) != classes
            or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names)):
        fail(f"extra.label_names must list {classes} distinct names, one per class of "
             f"task {task!r}, got {json.dumps(names)[:80]}")
