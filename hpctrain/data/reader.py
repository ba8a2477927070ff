"""Read a dataset: any contiguous row range of a split, across shard boundaries.

Opening validates the manifest and checks every shard cheaply (it exists, opens as HDF5, and
X and y have the manifest's shapes and dtypes), so that a broken dataset is reported before
training starts, identically on every rank. Reads go by hyperslab straight into the output
arrays and touch only the shards that overlap the range. Shard handles stay open (a bounded
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
        for split in self.splits:
            for index, shard in enumerate(self._shards[split]):
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


def _open_h5(path):
    try:
        return h5py.File(path, "r", rdcc_nbytes=CACHE_BYTES)
    except OSError as err:
        raise InputError("not a readable HDF5 shard (truncated or corrupted?): "
                         f"{first_line(err)}", path=path) from None


def _corrupted(err, path) -> InputError:
    return InputError(f"corrupted HDF5 shard: {first_line(err)}", path=path)
