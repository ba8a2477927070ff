"""What a label column holds, learned block by block, and the task it implies.

The first pass of an import feeds every block of labels to a LabelSummary; at the end it
knows whether all labels are integers, their range, and whether there are at most two
distinct values, which is all that inferring the task and range-checking the classes needs.
It remembers where the first offending label was, so that errors can name the line or row.
"""

import numpy as np

from ..errors import InputError

# More classes than this is almost surely a numeric target, not class indices.
MAX_CLASSES = 1 << 16


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
