"""NumPy inputs: an .npy pair (features, labels) or an .npz holding arrays X and y.

.npy files are memory-mapped, so they are read block by block and never loaded whole.
An .npz member cannot be memory-mapped (it is a zip entry): it is loaded into memory, so
use an .npy pair or a CSV for inputs larger than memory.
"""

import zipfile
import zlib

import numpy as np

from ..errors import InputError
from .input_errors import check_finite, first_line, os_error, unreadable_rows
from .labels import LabelSummary

BLOCK_ROWS = 1 << 14
# Booleans, signed and unsigned integers, and floats can be features or labels.
_NUMERIC_KINDS = "biuf"
_LOAD_ERRORS = (ValueError, EOFError, zipfile.BadZipFile, zlib.error)


class ArraySource:
    """Rows from two arrays; errors name `x_path` or `y_path` and the row (0-based)."""

    def __init__(self, X, y, x_path, y_path):
        self.x_path, self.y_path = str(x_path), str(y_path)
        self.X = _features(X, self.x_path)
        self.y = _labels(y, self.y_path)
        if len(self.X) != len(self.y):
            raise InputError(f"{len(self.y)} labels for {len(self.X)} rows of {self.x_path}",
                             path=self.y_path)
        self.features = self.X.shape[1]
        self.feature_names = None
        self.label_path = self.y_path

    def scan(self) -> tuple[int, LabelSummary]:
        summary = LabelSummary()
        for _, y in self.blocks():
            summary.add(y)
        return len(self.X), summary

    def blocks(self):
        """(X float32 (m, D), y float64 (m,)) blocks, each checked for finite values."""
        for start in range(0, len(self.X), BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, len(self.X))
            try:
                with np.errstate(over="ignore"):
                    X = np.ascontiguousarray(self.X[start:stop], dtype=np.float32)
                y = np.asarray(self.y[start:stop], dtype=np.float64)
            except (OSError, ValueError) as err:  # e.g. a memory map over a damaged file
                raise unreadable_rows(start, stop, err, self.x_path) from None
            check_finite(X, y, lambda i, s=start: f"row {s + i}",
                         lambda j: f"column {j}", "label", self.x_path, self.y_path)
            yield X, y

    def where(self, row: int) -> str:
        return f"row {row}"


def load_npy(path):
    """A memory-mapped array; InputError naming the file if it is not a readable .npy."""
    return _load(path, ".npy", lambda: np.load(path, mmap_mode="r", allow_pickle=False))


def load_npz(path):
    """(X, y) from an .npz archive with members X and y."""

    def members():
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("X", "y") if k not in archive.files]
            if missing:
                raise InputError(f"no array {missing[0]!r} in the archive (it has: "
                                 f"{', '.join(archive.files) or 'nothing'}); "
                                 "expected arrays X and y", path=path)
            return archive["X"], archive["y"]

    return _load(path, ".npz", members)


def _load(path, kind, load):
    """load(), with the OS's and NumPy's errors turned into InputErrors naming the file."""
    try:
        return load()
    except OSError as err:
        raise os_error(err, path) from None
    except _LOAD_ERRORS as err:
        raise InputError(f"not a readable {kind} file: {first_line(err)}", path=path) from None


def _features(X, path):
    if X.dtype.kind not in _NUMERIC_KINDS:
        raise InputError(f"features must be numbers, not {X.dtype}", path=path)
    if X.ndim != 2:
        raise InputError(f"features must be a 2-D array (rows, features), got shape "
                         f"{X.shape}", path=path)
    if X.shape[0] == 0:
        raise InputError("empty input: 0 rows", path=path)
    if X.shape[1] == 0:
        raise InputError("empty input: 0 feature columns", path=path)
    return X


def _labels(y, path):
    if y.dtype.kind not in _NUMERIC_KINDS:
        raise InputError(f"labels must be numbers, not {y.dtype}", path=path)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise InputError(f"labels must be a 1-D array, got shape {y.shape}", path=path)
    return y

