"""Stream a numeric CSV (header row, label column by name) in chunks of lines.

The file is read twice and never held whole: the first pass (`scan`) validates every cell
and learns the row count and what the labels look like; the second (`blocks`) yields rows
for writing. Each chunk is parsed by numpy.loadtxt (fast, in C); if that fails, the chunk
is parsed again cell by cell to name the exact line and column of the problem.
Blank lines are skipped; quoted numbers ("1.5") are accepted; the delimiter is a comma.
"""

import csv
import itertools

import numpy as np

from ..errors import InputError
from .input_errors import check_finite, os_error
from .labels import LabelSummary

# About 2M cells (16 MB as float64) per chunk, whatever the width of the file.
CHUNK_CELLS = 1 << 21


class CsvSource:
    def __init__(self, path, label: str, chunk_rows: int | None = None):
        self.path = self.label_path = str(path)
        self.names = self._read_header()
        self.ncols = len(self.names)
        self.label_index = self._find_label(label)
        self.label = label
        self.feature_names = [n for i, n in enumerate(self.names) if i != self.label_index]
        self.features = len(self.feature_names)
        self.chunk_rows = chunk_rows or max(1, CHUNK_CELLS // self.ncols)
        self.blank_lines = []  # line numbers of skipped blank lines, filled by scan()

    # -- the two passes ----------------------------------------------------------------------

    def scan(self) -> tuple[int, LabelSummary]:
        """Validate every row; return (rows, label summary). InputError at the first fault."""
        summary, rows = LabelSummary(), 0
        self.blank_lines = []
        for _, y in self._rows(record_blanks=True):
            summary.add(y)
            rows += len(y)
        if rows == 0:
            raise InputError("empty input: a header but no data rows", path=self.path)
        return rows, summary

    def blocks(self):
        """(X float32 (m, D) C-contiguous, y float64 (m,)) in file order."""
        return self._rows(record_blanks=False)

    def where(self, row: int) -> str:
        """'line N' of data row `row` (0-based), counting the header and blank lines."""
        line = row + 2
        for blank in self.blank_lines:  # sorted: each blank line at or before it shifts it
            if blank > line:
                break
            line += 1
        return f"line {line}"

    # -- reading -----------------------------------------------------------------------------

    def _open(self):
        try:
            # utf-8-sig drops the byte-order mark that spreadsheet programs write.
            return open(self.path, newline="", encoding="utf-8-sig")
        except OSError as err:
            raise os_error(err, self.path) from None

    def _read_header(self) -> list:
        with self._open() as f:
            try:
                first = f.readline()
            except (OSError, UnicodeDecodeError) as err:
                raise self._read_error(err, 1) from None
        if not first.strip():
            raise InputError("empty input: no header row", path=self.path)
        return [name.strip() for name in next(csv.reader([first], skipinitialspace=True))]

    def _find_label(self, label) -> int:
        matches = [i for i, name in enumerate(self.names) if name == label]
        if not matches:
            shown = ", ".join(self.names[:20]) + (", ..." if len(self.names) > 20 else "")
            raise InputError(f"no label column {label!r} in the header (columns: {shown})",
                             path=self.path)
        if len(matches) > 1:
            raise InputError(f"the header names column {label!r} {len(matches)} times",
                             path=self.path)
        if self.ncols < 2:
            raise InputError("no feature columns besides the label", path=self.path)
        return matches[0]

    def _rows(self, record_blanks: bool):
        with self._open() as f:
            line = 1
            try:
                f.readline()  # the header
                while lines := list(itertools.islice(f, self.chunk_rows)):
                    block = self._chunk(lines, line + 1, record_blanks)
                    line += len(lines)
                    if block is not None:
                        yield block
            except (OSError, UnicodeDecodeError) as err:
                raise self._read_error(err, line + 1) from None

    def _read_error(self, err, line) -> InputError:
        if isinstance(err, UnicodeDecodeError):
            return InputError(f"near line {line}: not UTF-8 text", path=self.path)
        return os_error(err, self.path)

    def _chunk(self, lines, first_line, record_blanks):
        """Parse one chunk of lines; None if it held only blank lines."""
        keep = [i for i, text in enumerate(lines) if text.strip()]
        if len(keep) < len(lines):
            if record_blanks:
                kept = set(keep)
                self.blank_lines += [first_line + i for i in range(len(lines)) if i not in kept]
            lines = [lines[i] for i in keep]
        if not lines:
            return None
        numbers = [first_line + i for i in keep]
        values = self._parse(lines, numbers)
        return self._split_columns(values, numbers)

    def _parse(self, lines, numbers):
        try:
            values = np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2,
                                comments=None, quotechar='"')
            if values.shape == (len(lines), self.ncols):
                return values
        except ValueError:
            pass
        return self._parse_slowly(lines, numbers)

    def _parse_slowly(self, lines, numbers):
        """Cell by cell, to report the first bad line and column exactly."""
        values = np.empty((len(lines), self.ncols), dtype=np.float64)
        for i, cells in enumerate(csv.reader(lines, skipinitialspace=True)):
            if len(cells) != self.ncols:
                raise InputError(f"line {numbers[i]}: {len(cells)} values, the header has "
                                 f"{self.ncols} (ragged row)", path=self.path)
            for j, cell in enumerate(cells):
                values[i, j] = self._number(cell, numbers[i], j)
        return values

    def _number(self, cell, line, column) -> float:
        text = cell.strip()
        try:
            if not text or "_" in text:  # float() takes '1_000'; loadtxt does not
                raise ValueError
            return float(text)
        except ValueError:
            what = "empty value" if not text else f"not a number: {text[:40]!r}"
            raise InputError(f"line {line}, column {self.names[column]!r}: {what}",
                             path=self.path) from None

    def _split_columns(self, values, numbers):
        li = self.label_index
        X = np.empty((len(values), self.features), dtype=np.float32)
        with np.errstate(over="ignore"):  # beyond float32 becomes Inf, reported below
            X[:, :li] = values[:, :li]
            X[:, li:] = values[:, li + 1:]
        y = np.ascontiguousarray(values[:, li])
        check_finite(X, y, lambda i: f"line {numbers[i]}",
                     lambda j: f"column {self.feature_names[j]!r}",
                     f"column {self.label!r}", self.path)
        return X, y
