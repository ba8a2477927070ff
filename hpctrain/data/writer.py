"""Write a dataset from a stream of row blocks: route rows to splits, cut splits into shards.

Every maker of datasets (synthetic, CSV, NPY/NPZ) ends here: it hands over blocks of rows in
input order, and this module assigns them to train/val/test (splits.py), writes each split's
balanced shards, optionally standardizes, checksums, writes the manifest and renames the
finished directory into place (staging.py). Memory use is one block plus one byte per row.
"""

import os

import h5py
import numpy as np

from ..errors import InputError
from .format import DTYPE, FORMAT_NAME, FORMAT_VERSION, label_dtype, sha256_file, shard_file
from .format import write_manifest as _write_manifest
from .ranks import rank_slice
from .splits import SPLIT_CODES, plan_splits
from .staging import Staging, check_out
from .standardize import RunningMoments, standardize_shard

# X chunks of at most 1 MiB: big enough for fast sequential reads, small enough that a
# rank reading a few hundred rows does not pull in megabytes it does not need.
CHUNK_BYTES = 1 << 20
Y_CHUNK_ROWS = 1 << 16
# A chunk cache larger than one chunk lets unaligned block writes fill chunks in memory.
CACHE_BYTES = 16 << 20


def x_chunk_rows(features: int, rows: int) -> int:
    return max(1, min(rows, CHUNK_BYTES // (4 * features)))


class SplitWriter:
    """Appends rows of one split into min(shards, rows) balanced shard files, in order."""

    def __init__(self, root, split, rows, shards, features, ydtype):
        count = min(shards, rows)
        self.root, self.split, self.features, self.ydtype = root, split, features, ydtype
        self.sizes = [stop - start for start, stop in (rank_slice(rows, i, count)
                                                       for i in range(count))]
        self.index, self.offset, self.file = -1, 0, None
        self.X = self.y = None  # datasets of the open shard
        os.mkdir(os.path.join(root, split))

    def append(self, X, y) -> None:
        pos = 0
        while pos < len(X):
            if self.file is None:
                self._open_next()
            take = min(len(X) - pos, self.sizes[self.index] - self.offset)
            rows = np.s_[self.offset:self.offset + take]
            self.X.write_direct(X, np.s_[pos:pos + take], rows)
            self.y.write_direct(y, np.s_[pos:pos + take], rows)
            pos += take
            self.offset += take
            if self.offset == self.sizes[self.index]:
                self.close()

    def _open_next(self) -> None:
        self.index += 1
        self.offset = 0
        if self.index >= len(self.sizes):
            raise _input_changed(f"more {self.split} rows than counted")
        rows = self.sizes[self.index]
        path = os.path.join(self.root, shard_file(self.split, self.index))
        self.file = h5py.File(path, "w", rdcc_nbytes=CACHE_BYTES)
        self.X = self.file.create_dataset(
            "X", shape=(rows, self.features), dtype=DTYPE,
            chunks=(x_chunk_rows(self.features, rows), self.features))
        self.y = self.file.create_dataset("y", shape=(rows,), dtype=self.ydtype,
                                          chunks=(min(rows, Y_CHUNK_ROWS),))
        first_row = sum(self.sizes[:self.index])
        self.file.attrs.update({"format": FORMAT_NAME, "version": FORMAT_VERSION,
                                "split": self.split, "shard": self.index,
                                "first_row": first_row})

    def close(self) -> None:
        """Close the open shard, if any: once it is full, or after a failure so that the
        staging directory can go cleanly."""
        if self.file is not None:
            self.file.close()
            self.file = None

    def finish(self) -> list:
        """Shard entries (file, rows) once every row has arrived."""
        if self.file is not None or self.index != len(self.sizes) - 1:
            self.close()
            raise _input_changed(f"fewer {self.split} rows than counted")
        return [{"file": shard_file(self.split, i), "rows": n} for i, n in enumerate(self.sizes)]


def write_dataset(out, blocks, *, rows, features, task, classes, shards=1, val_fraction=0.0,
                  test_fraction=0.0, seed=0, standardize=False, force=False, extra=None,
                  source=None, progress=None) -> dict:
    """Write `rows` rows arriving as (X float32 (m, D), y (m,)) blocks; return the manifest.

    `source` names the input in error messages; `extra` adds keys to the manifest;
    `progress(m)` is called after each block.
    """
    out = check_out(out, force)
    plan, split_sizes = plan_splits(rows, val_fraction, test_fraction, seed, path=source)
    ydtype = label_dtype(task)
    with Staging(out) as stage:
        writers = {name: SplitWriter(stage.dir, name, n, shards, features, ydtype)
                   for name, n in split_sizes.items() if n > 0}
        moments = RunningMoments(features) if standardize else None
        try:
            _write_rows(blocks, rows, writers, moments, plan, ydtype, source, progress)
        except BaseException:
            for writer in writers.values():
                writer.close()
            raise
        split_shards = {name: w.finish() for name, w in writers.items()}
        manifest = _manifest(task, features, classes, split_sizes, split_shards, extra)
        if moments is not None:
            mean, std = moments.result()
            _standardize_all(stage.dir, split_shards, mean, std, features)
            manifest["standardization"] = {"split": "train", "mean": mean.tolist(),
                                           "std": std.tolist()}
        _checksum_all(stage.dir, split_shards)
        _write_manifest(stage.dir, manifest)
        stage.commit()
    return manifest


def _write_rows(blocks, rows, writers, moments, plan, ydtype, source, progress) -> None:
    """Pass every block to the split writers; the blocks must hold exactly `rows` rows."""
    seen = 0
    for X, y in blocks:
        X = np.ascontiguousarray(X, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=ydtype)
        if seen + len(X) > rows:
            raise _input_changed("more rows than counted", source)
        _route(writers, moments, plan, seen, X, y)
        seen += len(X)
        if progress is not None:
            progress(len(X))
    if seen != rows:
        raise _input_changed(f"expected {rows} rows, read {seen}", source)


def _route(writers, moments, plan, first, X, y) -> None:
    """Send each row of a block to its split's writer, keeping input order within splits."""
    if plan is None:
        parts = {"train": (X, y)}
    else:
        codes = plan[first:first + len(X)]
        parts = {}
        for name, code in SPLIT_CODES:
            mask = codes == code
            if mask.any():
                parts[name] = (np.ascontiguousarray(X[mask]), y[mask])
    for name, (Xs, ys) in parts.items():
        writers[name].append(Xs, ys)
        if name == "train" and moments is not None:
            moments.add(Xs)


def _manifest(task, features, classes, split_sizes, split_shards, extra) -> dict:
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "task": task,
                "features": features, "classes": classes, "dtype": DTYPE,
                "label_dtype": label_dtype(task), "splits": {}}
    for name, shards in split_shards.items():
        manifest["splits"][name] = {"rows": split_sizes[name], "shards": shards}
    manifest.update(extra or {})
    return manifest


def _input_changed(what, source=None) -> InputError:
    """The rows differ from what the first pass counted: the file was edited meanwhile."""
    return InputError(f"{what}: the input changed while it was being imported", path=source)


def _every_shard(root, split_shards):
    """(entry, path) of every shard written, split by split."""
    for shards in split_shards.values():
        for shard in shards:
            yield shard, os.path.join(root, shard["file"])


def _standardize_all(root, split_shards, mean, std, features) -> None:
    block_rows = max(1, (16 << 20) // (8 * features))  # 16 MiB of float64 per block
    for _, path in _every_shard(root, split_shards):
        standardize_shard(path, mean, std, block_rows)


def _checksum_all(root, split_shards) -> None:
    for shard, path in _every_shard(root, split_shards):
        shard["sha256"] = sha256_file(path)
