"""What a label column holds, learned block by block, and the task it implies.

The first pass of an import feeds every block of labels to a LabelSummary; at the end it
knows whether all labels are integers, their range, and whether there are at most two
distinct values, which is all that inferring the task and range-checking the classes needs.
It remembers where the first offending label was, so that errors can name the line or row.

Class names (`--label-map auto`: `yes`/`no`, `benign`/`malignant`) go through LabelNames
instead: the first pass collects the distinct names (at most MAX_LABEL_NAMES, so memory is
bounded by them, never by the rows), then they are sorted and numbered 0..C-1 before the
second pass writes a single row.
"""

import math

import numpy as np

from ..errors import InputError

# More classes than this is almost surely a numeric target, not class indices.
MAX_CLASSES = 1 << 16
# --label-map auto: more distinct names than this is not a set of classes (an id column, a
# free-text column, a numeric target); and a class name is short.
MAX_LABEL_NAMES = 1000
MAX_LABEL_NAME_CHARS = 256


class LabelSummary:
    def __init__(self):
        self.rows = 0
        self.low = self.high = None  # (value, row) of the smallest / largest label
        self.fraction = None  # (value, row) of the first label that is not an integer
        self.distinct = {}  # value -> first row, kept while there are at most 3

    def add(self, y) -> None:
        """Labels of the next block (float64, all finite) in row order."""
        if len(y) == 0:
            return
        first = self.rows
        self.rows += len(y)
        lo, hi = int(np.argmin(y)), int(np.argmax(y))
        if self.low is None or y[lo] < self.low[0]:
            self.low = (float(y[lo]), first + lo)
        if self.high is None or y[hi] > self.high[0]:
            self.high = (float(y[hi]), first + hi)
        if self.fraction is None:
            odd = np.flatnonzero(y != np.round(y))
            if len(odd):
                self.fraction = (float(y[odd[0]]), first + int(odd[0]))
        if len(self.distinct) <= 2:
            values, index = np.unique(y, return_index=True)
            for value, row in zip(values[:3].tolist(), index[:3].tolist(), strict=True):
                self.distinct.setdefault(value, first + row)

    def named_rows(self) -> set:
        """The rows that resolve() may name in a message (so a reader can keep their lines)."""
        return {found[1] for found in (self.low, self.high, self.fraction) if found is not None}

    def infer_task(self) -> str:
        """binary: at most 2 integer values; multiclass: more integers; else regression."""
        if self.fraction is not None:
            return "regression"
        return "binary" if len(self.distinct) <= 2 else "multiclass"

    def resolve(self, task, classes, where, path):
        """The (task, classes) to write; InputError naming the first label that does not fit.

        `where(row)` describes a row for messages ("line 7" in a CSV, "row 6" in arrays).
        """
        task = task or self.infer_task()

        def fail(message):
            raise InputError(message, path=path)

        if task == "regression":
            if classes not in (None, 0):
                fail(f"--classes {classes} does not fit regression (it has no classes)")
            return task, 0
        if self.fraction is not None:
            value, row = self.fraction
            fail(f"{where(row)}: label {value:g} is not an integer class "
                 "(use --task regression for a numeric target)")
        if task == "binary":
            if classes not in (None, 2):
                fail(f"--classes {classes} does not fit binary (it has 2 classes)")
            classes = 2
        elif classes is None:
            classes = max(2, int(self.high[0]) + 1)
        elif classes < 2:
            fail(f"multiclass needs at least 2 classes, got --classes {classes}")
        for value, row in (self.low, self.high):
            if not 0 <= value < classes:
                fail(f"{where(row)}: label {value:g} is out of range for {task} "
                     f"(0..{classes - 1})")
        if classes > MAX_CLASSES:
            fail(f"{classes} classes is more than {MAX_CLASSES}: "
                 "use --task regression for a numeric target")
        return task, classes


class LabelNames:
    """Class names -> class ids: learned in order of appearance, then numbered in sorted order.

    `id(text)` is given every label cell of the first pass (as a loadtxt converter: it raises
    ValueError for anything it cannot take, and the caller then names the line); `freeze()`
    sorts the names and renumbers them 0..C-1; on the second pass `id` gives those numbers and
    refuses a name the first pass did not see.
    """

    def __init__(self):
        self.ids = {}
        self.names = None  # the sorted names, once frozen

    def id(self, text) -> float:
        name = clean_name(text)
        found = self.ids.get(name)
        if found is not None:
            return found
        if not name:
            raise ValueError("empty value")
        if self.names is not None:
            raise ValueError(f"label {name[:40]!r} was not there on the first pass: the input "
                             "changed while it was being imported")
        if len(name) > MAX_LABEL_NAME_CHARS:
            raise ValueError(f"a class name of {len(name)} characters (at most "
                             f"{MAX_LABEL_NAME_CHARS}): is this column a label?")
        if len(self.ids) >= MAX_LABEL_NAMES:
            raise ValueError(f"more than {MAX_LABEL_NAMES} distinct labels: --label-map auto "
                             "is for class names (a numeric target needs numbers, "
                             "--task regression)")
        self.ids[name] = found = float(len(self.ids))
        return found

    def freeze(self, column, path) -> list:
        """Sort the names (by value when every one is a number), number them 0..C-1."""
        names = sorted(self.ids)
        values = [_number_or_none(name) for name in names]
        if names and None not in values:
            pairs = sorted(zip(values, names, strict=True))
            for (a, first), (b, second) in zip(pairs, pairs[1:], strict=False):
                if a == b:
                    raise InputError(f"column {column!r}: labels {first!r} and {second!r} are "
                                     "the same number written two ways", path=path)
            names = [name for _, name in pairs]
        self.names = names
        self.ids = {name: float(i) for i, name in enumerate(names)}
        return list(names)


def clean_name(text) -> str:
    """A label cell as a class name: surrounding spaces and one pair of quotes removed."""
    name = text.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('""', '"').strip()
    return name


def _number_or_none(name):
    try:
        value = float(name)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def resolve_named(names, task, classes, column, path):
    """(task, classes) for labels given as class names; InputError when they do not fit."""

    def fail(message):
        raise InputError(message, path=path)

    count = len(names)
    if task == "regression":
        fail("--label-map auto makes classes from names; it does not fit --task regression")
    if count < 2:
        fail(f"column {column!r} holds one class name ({names[0]!r}): classification needs "
             "at least 2")
    if task == "binary" and count != 2:
        fail(f"--task binary, but column {column!r} holds {count} class names "
             f"({_shown(names)})")
    if classes is not None and classes != count:
        fail(f"--classes {classes}, but column {column!r} holds {count} class names "
             f"({_shown(names)})")
    return task or ("binary" if count == 2 else "multiclass"), count


def _shown(names, most=10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", ... {len(names) - most} more" if len(names) > most else "")
