"""The rows to predict, read from .npy or .csv, in the model's column order.

A checkpoint trained on an imported CSV records its training header; a CSV to predict must
then have a header, and its columns are matched BY NAME, in any order: the label column is
dropped, other extra columns are ignored with a warning, a missing one is an error naming it.
Without recorded names, columns are taken in order (a header, when present, must have the
model's column count). A .npy input has no names: its columns are the training columns in
order. Every value must be a finite float32; a bad one is named by line and column.
"""

import csv
import os
from collections import Counter

import numpy as np

from .errors import InputError
from .world import print_stderr

BLOCK_ROWS = 8192  # rows parsed into one float64 block before it is kept as float32
SHOWN = 8  # names listed in one message


def read_features(path, features: int, names=None, label=None, warn=print_stderr) -> np.ndarray:
    """Rows of `features` float32 values in the model's column order. A CSV's columns are
    matched by `names` when given (see the module's docstring)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("input file not found", path)
    if os.path.isdir(path):
        raise InputError("input is a directory, not a .csv or .npy file", path)
    if path.endswith(".npy"):
        try:
            X = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"not a readable .npy file ({err})", path) from None
        if X.ndim == 1 and features == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[1] != features:
            raise InputError(f"expected rows of {features} features, got shape {X.shape}", path)
        if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
            raise InputError(f"features must be real numbers, not {X.dtype}", path)
        with np.errstate(over="ignore"):
            X = np.ascontiguousarray(X, dtype=np.float32)
        if not np.isfinite(X).all():
            raise InputError("features must be finite float32 numbers (NaN, Inf or out of "
                             "range found)", path)
        return X
    if path.endswith(".csv"):
        return read_csv(path, features, names, label, warn)
    raise InputError("input must be .csv or .npy", path)


def read_csv(path, features: int, names=None, label=None, warn=print_stderr) -> np.ndarray:
    """Stream a numeric CSV into a float32 (n, features) array, one pass, blocks of rows."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, skipinitialspace=True)
            try:
                return _read_rows(reader, path, features, names, label, warn)
            except UnicodeDecodeError:
                raise InputError(f"near line {reader.line_num + 1}: not UTF-8 text",
                                 path) from None
            except csv.Error as err:
                raise InputError(f"line {reader.line_num}: {err}", path) from None
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}", path) from None


def _read_rows(reader, path, features, names, label, warn) -> np.ndarray:
    first = next((row for row in reader if not _blank(row)), None)
    if first is None:
        raise InputError("no rows", path)
    first_line = reader.line_num
    cells = [c.strip() for c in first]
    header = _is_header(cells, names)
    if names is not None:
        if not header:
            raise InputError(
                f"line {first_line} is data, but a header row is needed: the model was trained "
                f"on named columns ({_listed(names)}) and takes them by name, in any order",
                path)
        columns = _match_names(cells, names, label, path, warn)
        column_names = names
    elif header:
        if len(cells) != features:
            raise InputError(f"the header has {len(cells)} columns, the model takes "
                             f"{features} (in training order: the checkpoint records no "
                             f"column names)", path)
        columns, column_names = list(range(features)), cells
    elif len(cells) != features:
        raise InputError(f"line {first_line}: {len(cells)} values, the model takes {features}",
                         path)
    else:
        columns, column_names = list(range(features)), None
    width = len(cells)  # every row has the first row's count of values

    blocks, block = [], np.empty((BLOCK_ROWS, len(columns)), dtype=np.float64)
    lines = np.empty(BLOCK_ROWS, dtype=np.int64)
    n = 0

    def keep(count):
        blocks.append(_finite(block[:count], lines[:count], column_names, path))

    rows = reader if header else _chain(first, reader)
    for row in rows:
        if _blank(row):
            continue
        line = reader.line_num
        if len(row) != width:
            what = "the header has" if header else "the first row has"
            raise InputError(f"line {line}: {len(row)} values, {what} {width} (ragged row)",
                             path)
        try:
            block[n] = [float(row[c]) for c in columns]
        except ValueError:
            raise _bad_value(row, columns, column_names, line, path) from None
        lines[n] = line
        n += 1
        if n == BLOCK_ROWS:
            keep(n)
            n = 0
    if n:
        keep(n)
    if not blocks:
        raise InputError("a header but no data rows", path)
    return np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)


def _chain(first, reader):
    yield first
    yield from reader


def _blank(row) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_header(cells, names) -> bool:
    """A header names a known column, or has no number in it at all."""
    if names is not None and set(cells) & set(names):
        return True
    return any(cells) and not any(_is_number(c) for c in cells if c)


def _match_names(cells, names, label, path, warn) -> list:
    """Each model column's position in the header; InputError for missing or doubled ones."""
    used = set(names) | ({label} if label else set())
    counts = Counter(cells)
    for name in names if label is None else [*names, label]:
        if counts[name] > 1:
            raise InputError(f"the header names column {name!r} {counts[name]} times", path)
    position = {c: i for i, c in enumerate(cells)}
    missing = [n for n in names if n not in position]
    unknown = [c for c in cells if c not in used]
    if missing:
        others = f"; the header also has {_listed(unknown)}" if unknown else ""
        raise InputError(f"missing column{'s' if len(missing) > 1 else ''} "
                         f"{_listed(missing)} (the model takes {_listed(names)}, by name, in "
                         f"any order){others}", path)
    if unknown:
        warn(f"hpctrain: warning: {path}: ignoring column{'s' if len(unknown) > 1 else ''} "
             f"{_listed(unknown)}: not one of the model's")
    return [position[n] for n in names]


def _listed(names) -> str:
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")


def _column(j, column_names) -> str:
    return repr(column_names[j]) if column_names else str(j + 1)


def _bad_value(row, columns, column_names, line, path) -> InputError:
    for j, c in enumerate(columns):
        text = row[c].strip()
        if not _is_number(text):
            what = "empty value" if not text else f"not a number: {text[:40]!r}"
            return InputError(f"line {line}, column {_column(j, column_names)}: {what}", path)
    return InputError(f"line {line}: not a number", path)  # not reached


def _finite(block, lines, column_names, path) -> np.ndarray:
    """The block as float32; InputError at the first NaN, Inf or value beyond float32."""
    with np.errstate(over="ignore"):
        X = block.astype(np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"line {lines[i]}, column {_column(j, column_names)}: "
                         f"{float(block[i, j])!r} is not a finite float32 number", path)
    return X


# -- output ------------------------------------------------------------------------------------
