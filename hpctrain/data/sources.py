"""Checks shared by every importer: readable input, finite float32 values.

An importer turns an input file into blocks of (X float32, y float64) rows. These helpers
word its errors the same way everywhere: the file, then where in it, then what is wrong.
"""

import numpy as np

from ..errors import InputError


def os_error(err: OSError, path) -> InputError:
    """A one-line InputError for a file that cannot be opened or read."""
    if isinstance(err, FileNotFoundError):
        return InputError("no such file", path=path)
    if isinstance(err, IsADirectoryError):
        return InputError("is a directory, not a file", path=path)
    if isinstance(err, PermissionError):
        return InputError("permission denied", path=path)
    return InputError(f"cannot read: {err.strerror or err}", path=path)


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
