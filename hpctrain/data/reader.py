"""Read a dataset: any contiguous row range of a split, across shard boundaries.

Opening validates the manifest and checks every shard cheaply (it exists, lies inside the
dataset directory once links are resolved, opens as HDF5, and X and y have the manifest's
shapes and dtypes), so that a broken dataset is reported before training starts, identically
on every rank. Reads go by hyperslab straight into the output arrays and touch only the
shards that overlap the range. Every block read is checked for what the model cannot use
(NaN or Inf in X or a regression target, a class label outside 0..C-1), naming the shard and
its row: one vectorised pass over data already in memory. Shard handles stay open (a bounded
cache) so that reading batch after batch never reopens files.
"""

import os
from bisect import bisect_right
from collections import OrderedDict

import h5py
import numpy as np

from ..errors import InputError
from .format import DTYPE, label_dtype, ordered_splits, read_manifest
from .input_errors import first_line, unreadable_rows
from .ranks import rank_slice

# A rank reads a contiguous range, so it touches few shards; the bound only protects the
# process's file-descriptor limit on datasets with thousands of shards.
MAX_OPEN_SHARDS = 64
CACHE_BYTES = 4 << 20
# What h5py raises for damaged files, depending on which structure the damage hit.
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


def open_dataset(path) -> "Dataset":
    """Open and check a dataset directory; InputError naming the bad file otherwise."""
    return Dataset(path)


class Dataset:
    """A dataset directory opened for reading (see docs/INTERFACES.md, "Datasets")."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.manifest = read_manifest(self.path)
        self.task = self.manifest["task"]
        self.features = self.manifest["features"]
        self.classes = self.manifest["classes"]
        self.label_dtype = np.dtype(label_dtype(self.task))
        self.splits = ordered_splits(self.manifest["splits"])
        self._files = OrderedDict()
        self._shards, self._offsets = {}, {}
        for split in self.splits:
            entries = self.manifest["splits"][split]["shards"]
            self._shards[split] = [os.path.join(self.path, e["file"]) for e in entries]
            self._offsets[split] = np.cumsum([0] + [e["rows"] for e in entries]).tolist()
        root = os.path.realpath(self.path)
        for split in self.splits:
            entries = self.manifest["splits"][split]["shards"]
            for index, shard in enumerate(self._shards[split]):
                _check_inside(root, shard, entries[index]["file"])
                self._check_shard(shard, self.shard_rows(split, index))

    # -- what is in it ---------------------------------------------------------------------

    def rows(self, split: str) -> int:
        return self._offsets[self._known(split)][-1]

    def shards(self, split: str) -> list:
        """The manifest's shard entries of a split: [{file, rows, sha256}, ...]."""
        return [dict(e) for e in self.manifest["splits"][self._known(split)]["shards"]]

    def shard_rows(self, split: str, index: int) -> int:
        offsets = self._offsets[self._known(split)]
        return offsets[index + 1] - offsets[index]

    def shard_path(self, split: str, index: int) -> str:
        return self._shards[self._known(split)][index]

    @property
    def standardization(self):
        """(mean, std) float64 arrays the stored X was standardized with, or None."""
        std = self.manifest.get("standardization")
        if std is None:
            return None
        return np.asarray(std["mean"], dtype=np.float64), np.asarray(std["std"], np.float64)

    # -- reading ---------------------------------------------------------------------------

    def read(self, split: str, start: int, stop: int):
        """Rows [start, stop) as (X float32 (n, D), y (n,)), both C-contiguous."""
        total = self.rows(split)
        if not 0 <= start <= stop <= total:
            raise ValueError(f"rows [{start}, {stop}) outside split {split!r} of {total} rows")
        X = np.empty((stop - start, self.features), dtype=np.float32)
        y = np.empty(stop - start, dtype=self.label_dtype)
        offsets = self._offsets[split]
        index, pos = bisect_right(offsets, start) - 1, start
        while pos < stop:
            first, last = pos - offsets[index], min(stop, offsets[index + 1]) - offsets[index]
            dest = np.s_[pos - start:pos - start + last - first]
            self._read_shard(split, index, np.s_[first:last], X, y, dest)
            pos, index = offsets[index] + last, index + 1
        return X, y

    def read_rank(self, split: str, rank: int, size: int):
        """This rank's own contiguous, balanced rows of a split."""
        return self.read(split, *rank_slice(self.rows(split), rank, size))

    def close(self) -> None:
        while self._files:
            _, (handle, _, _) = self._files.popitem()
            handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit h5py may already be gone
            pass

    # -- internals -------------------------------------------------------------------------

    def _known(self, split: str) -> str:
        if split not in self._offsets:
            raise InputError(f"no split {split!r} (it has: {', '.join(self.splits)})",
                             path=self.path)
        return split

    def _read_shard(self, split, index, rows, X, y, dest) -> None:
        _, Xs, ys = self._handle(split, index)
        try:
            Xs.read_direct(X, rows, dest)
            ys.read_direct(y, rows, dest)
        except _H5_ERRORS as err:
            raise unreadable_rows(rows.start, rows.stop, err,
                                  self.shard_path(split, index)) from None
        check_values(X[dest], y[dest], rows.start, self.task, self.classes,
                     self.shard_path(split, index))

    def _handle(self, split, index):
        """(file, X, y) of a shard, opened once and kept (least recently used closes first)."""
        key = (split, index)
        if key in self._files:
            self._files.move_to_end(key)
            return self._files[key]
        path = self.shard_path(split, index)
        handle = _open_h5(path)
        try:
            self._files[key] = (handle, handle["X"], handle["y"])
        except _H5_ERRORS as err:
            handle.close()
            raise _corrupted(err, path) from None
        if len(self._files) > MAX_OPEN_SHARDS:
            _, (oldest, _, _) = self._files.popitem(last=False)
            oldest.close()
        return self._files[key]

    def _check_shard(self, path, rows) -> None:
        if not os.path.isfile(path):
            raise InputError("missing shard (listed in manifest.json)", path=path)
        try:
            with _open_h5(path) as f:
                check_arrays(f, path, rows, self.features, self.label_dtype)
        except _H5_ERRORS as err:  # metadata that opens but cannot be walked
            raise _corrupted(err, path) from None


def check_arrays(f, path, rows, features, ydtype) -> None:
    """X and y of an open shard have the manifest's shapes and dtypes."""
    expected = {"X": ((rows, features), np.dtype(DTYPE)), "y": ((rows,), np.dtype(ydtype))}
    for name, (shape, dtype) in expected.items():
        node = f.get(name)
        if not isinstance(node, h5py.Dataset):
            raise InputError(f"shard has no dataset {name!r}", path=path)
        if node.shape != shape or node.dtype != dtype:
            raise InputError(f"{name} is {node.dtype} {node.shape}, the manifest says "
                             f"{dtype} {shape}", path=path)


def check_values(X, y, first, task, classes, path) -> None:
    """Rows a shard holds that no model can train on: InputError naming the shard's row
    (0-based, `first` being the block's first row in the shard). Cheap: a finite float32
    sum proves there is no NaN or Inf; only a sum that is not (a NaN, an Inf, or finite
    values that overflowed it) makes it look value by value."""
    bad = _first_non_finite(X)
    if bad is not None:
        row, column = bad
        raise InputError(f"row {first + row}, column {column}: feature value "
                         f"{float(X[row, column])!r} is not finite (NaN or infinite)", path=path)
    if task == "regression":
        bad = _first_non_finite(y)
        if bad is not None:
            raise InputError(f"row {first + bad[0]}: target {float(y[bad[0]])!r} is not "
                             "finite (NaN or infinite)", path=path)
        return
    if len(y) and (y.min() < 0 or y.max() >= classes):
        row = int(np.flatnonzero((y < 0) | (y >= classes))[0])
        raise InputError(f"row {first + row}: label {int(y[row])} is out of range for {task} "
                         f"(0..{classes - 1})", path=path)


def _first_non_finite(values, block=1 << 20):
    """(row[, column]) of the first NaN or Inf, or None; no temporary unless there is one."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(values.sum()):
            return None
    # Some value is not finite, or finite ones overflowed the sum: look, a block at a time.
    rows = max(1, block // max(1, values[0].size))
    for start in range(0, len(values), rows):
        bad = np.argwhere(~np.isfinite(values[start:start + rows]))
        if len(bad):
            return (start + int(bad[0][0]), *(int(i) for i in bad[0][1:]))
    return None


def _check_inside(root, path, entry) -> None:
    """A shard, links resolved, must lie inside the dataset directory: a dataset from
    elsewhere cannot make the reader (or --verify, which reads every byte) open other files."""
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise InputError(f"the shard file {entry} resolves outside the dataset directory (to "
                         f"{real}); copy it in, or link the whole dataset directory instead",
                         path=path)


def _open_h5(path):
    try:
        return h5py.File(path, "r", rdcc_nbytes=CACHE_BYTES)
    except OSError as err:
        raise InputError("not a readable HDF5 shard (truncated or corrupted?): "
                         f"{first_line(err)}", path=path) from None


def _corrupted(err, path) -> InputError:
    return InputError(f"corrupted HDF5 shard: {first_line(err)}", path=path)
