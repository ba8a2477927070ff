"""InputErrors for bad input files, worded the same way by every importer and the reader.

Each message reads: the file, then where in it, then what is wrong, on one line.
"""

import os

import numpy as np

from ..errors import InputError

NO_SUCH_FILE = "no such file"
IS_A_DIRECTORY = "is a directory, not a file"


def check_is_file(path) -> None:
    """InputError unless `path` is an existing file (checked before any work starts)."""
    if not os.path.isfile(path):
        raise InputError(IS_A_DIRECTORY if os.path.isdir(path) else NO_SUCH_FILE, path=path)


def os_error(err: OSError, path) -> InputError:
    """A one-line InputError for a file that cannot be opened or read."""
    if isinstance(err, FileNotFoundError):
        return InputError(NO_SUCH_FILE, path=path)
    if isinstance(err, IsADirectoryError):
        return InputError(IS_A_DIRECTORY, path=path)
    if isinstance(err, PermissionError):
        return InputError("permission denied", path=path)
    return InputError(f"cannot read: {err.strerror or err}", path=path)


def first_line(err: Exception) -> str:
    """An exception's first line (h5py's and NumPy's messages run long), or its type."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def unreadable_rows(start: int, stop: int, err: Exception, path) -> InputError:
    """Rows that could not be read from a file that opened (damaged data, a bad map)."""
    return InputError(f"cannot read rows {start}..{stop}: {first_line(err)}", path=path)


def check_positive(**values) -> None:
    """InputError for the first option below 1, e.g. check_positive(shards=0)."""
    for name, value in values.items():
        if value < 1:
            raise InputError(f"--{name} must be >= 1, got {value}")


def first_bad(values) -> tuple | None:
    """Index (row[, column]) of the first value that is not finite, or None."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def check_finite(X, y, where, column_name, label_name, path, label_path=None) -> None:
    """Reject NaN, Inf, and values beyond float32's range (they become Inf when stored).

    X is the block already as float32; y as float64. `where(i)` names block row i. Label
    errors name `label_path` when the labels come from a file of their own.
    """
    bad = first_bad(X)
    if bad is not None:
        row, col = bad
        raise InputError(f"{where(row)}, {column_name(col)}: feature value is NaN, infinite "
                         "or beyond float32 range", path=path)
    with np.errstate(over="ignore"):
        bad = first_bad(y.astype(np.float32))
    if bad is not None:
        raise InputError(f"{where(bad[0])}, {label_name}: label {float(y[bad[0]])!r} is NaN, "
                         "infinite or beyond float32 range", path=label_path or path)
