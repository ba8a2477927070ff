"""Stream a numeric CSV (header row, label column by name) in chunks of lines.

The file is read twice and never held whole: the first pass (`scan`) validates every cell
and learns the row count and what the labels look like; the second (`blocks`) yields rows
for writing. Each chunk is parsed by numpy.loadtxt (fast, in C); if that fails, the chunk
is parsed again cell by cell to name the exact line and column of the problem.
Blank lines are skipped; quoted numbers ("1.5") are accepted; the delimiter is a comma.

Memory is bounded whatever the file holds: a line is read with a limit (MAX_LINE_CHARS: a
longer one is refused, naming it, before it is read whole), a chunk stops at CHUNK_CELLS
cells or CHUNK_CHARS characters, and nothing is kept per row or per blank line. Columns
named with --index-col are dropped without being parsed (an index may be text); class names
in the label column (--label-map auto) are numbered by labels.LabelNames.
"""

import csv
import re

import numpy as np

from ..errors import InputError
from .csv_header import find_column, refuse_index
from .input_errors import check_finite, os_error
from .labels import LabelNames, LabelSummary

# About 2M cells (16 MB as float64) per chunk, whatever the width of the file.
CHUNK_CELLS = 1 << 21
# ... and at most this many characters of text (lines padded with spaces stay bounded too).
CHUNK_CHARS = 1 << 24
# The longest line accepted, counting its line ending: 1 Mi characters hold some 60,000
# numeric columns. A longer line is refused rather than read, so that a file with no line
# breaks (one 2 GB "line") costs 1 MiB, not all of memory.
MAX_LINE_CHARS = 1 << 20
# What strict UTF-8 decoding cannot read becomes these code points with errors="surrogateescape".
_UNDECODABLE = re.compile("[\\udc80-\\udcff]")


class CsvSource:
    def __init__(self, path, label: str, chunk_rows: int | None = None, index_col=(),
                 label_map: str | None = None):
        self.path = self.label_path = str(path)
        self.names = self._read_header()
        self.ncols = len(self.names)
        self.label = label
        self.label_index = find_column(self.names, label, "label column", "--label", self.path)
        self.dropped = set()
        for name in index_col:  # every column of that name: pandas writes a MultiIndex as ',,'
            found = find_column(self.names, name, "column", "--index-col", self.path,
                                repeated=True)
            if self.label_index in found:
                raise InputError(f"--index-col {name!r} is the label column", path=self.path)
            self.dropped.update(found)
        keep = [i for i in range(self.ncols) if i != self.label_index and i not in self.dropped]
        if not keep:
            raise InputError("no feature columns besides the label", path=self.path)
        refuse_index(self.names[keep[0]], keep[0], self.path)
        self.feature_names = [self.names[i] for i in keep]
        self.features = len(keep)
        self._runs = _runs(keep)  # (first, stop, destination) of each run of kept columns
        self.label_names = LabelNames() if label_map == "auto" else None
        self.class_names = None  # the sorted class names, after scan() with --label-map
        self._converters = {i: _ignored for i in self.dropped}
        if self.label_names is not None:
            self._converters[self.label_index] = self.label_names.id
        self.chunk_rows = chunk_rows or max(1, CHUNK_CELLS // self.ncols)
        self._lines = {}  # line number of each row scan()'s label summary may name

    # -- the two passes ----------------------------------------------------------------------

    def scan(self) -> tuple[int, LabelSummary]:
        """Validate every row; return (rows, label summary). InputError at the first fault."""
        summary, rows = LabelSummary(), 0
        self._lines = {}
        for _, y, numbers in self._rows():
            if self.label_names is None:
                summary.add(y)
                named = summary.named_rows()
                self._lines = {row: self._lines.get(row) or numbers[row - rows]
                               for row in named}
            rows += len(y)
        if rows == 0:
            raise InputError("empty input: a header but no data rows", path=self.path)
        if self.label_names is not None:
            self.class_names = self.label_names.freeze(self.label, self.path)
        return rows, summary

    def blocks(self):
        """(X float32 (m, D) C-contiguous, y float64 (m,)) in file order."""
        for X, y, _ in self._rows():
            yield X, y

    def where(self, row: int) -> str:
        """'line N' of data row `row` (0-based), counting the header and blank lines."""
        line = self._lines.get(row)
        return f"line {line}" if line is not None else f"data row {row + 1}"

    # -- reading -----------------------------------------------------------------------------

    def _open(self, errors="strict"):
        try:
            # utf-8-sig drops the byte-order mark that spreadsheet programs write; newline=""
            # splits lines at \n, \r\n and \r alike and leaves the ends on.
            return open(self.path, newline="", encoding="utf-8-sig", errors=errors)
        except OSError as err:
            raise os_error(err, self.path) from None

    def _read_header(self) -> list:
        with self._open() as f:
            first = self._read_lines(f, 1, 1, CHUNK_CHARS)
        if not first or not first[0].strip():
            raise InputError("empty input: no header row", path=self.path)
        return [name.strip() for name in self._cells(first[0], 1)]

    def _rows(self):
        """(X, y, line numbers) of each chunk with data, in file order."""
        with self._open() as f:
            self._read_lines(f, 1, 1, CHUNK_CHARS)  # the header
            number = 2
            while lines := self._read_lines(f, self.chunk_rows, number, CHUNK_CHARS):
                block = self._chunk(lines, number)
                number += len(lines)
                if block is not None:
                    yield block

    def _read_lines(self, f, most, number, chars) -> list:
        """Up to `most` lines (fewer at the end, or once `chars` characters are in); `number`
        is the first one's line number. Each line is read with a limit."""
        lines, size, limit = [], 0, MAX_LINE_CHARS + 1
        readline, append = f.readline, lines.append
        try:
            for _ in range(most):
                text = readline(limit)
                length = len(text)
                if not length:
                    break
                if length == limit:
                    raise self._too_long(number + len(lines))
                append(text)
                size += length
                if size >= chars:
                    break
        except UnicodeDecodeError:
            raise self._not_utf8() from None
        except OSError as err:
            raise os_error(err, self.path) from None
        return lines

    def _too_long(self, number) -> InputError:
        return InputError(f"line {number}: longer than {MAX_LINE_CHARS} characters, the limit "
                          "for one CSV line (is this a CSV file?)", path=self.path)

    def _not_utf8(self) -> InputError:
        """Where the text stops being UTF-8. The strict decoder fails a whole buffer ahead of
        the line being read, so the file is read again, keeping undecodable bytes, to find
        the first line that holds one."""
        with self._open(errors="surrogateescape") as f:
            number = 0
            try:
                while text := f.readline(MAX_LINE_CHARS + 1):
                    number += 1
                    bad = _UNDECODABLE.search(text)
                    if bad is not None:
                        byte = ord(bad.group()) - 0xDC00
                        return InputError(f"line {number}: not UTF-8 text (byte 0x{byte:02x}, "
                                          f"character {bad.start() + 1}); save the file as "
                                          "UTF-8", path=self.path)
                    if len(text) > MAX_LINE_CHARS:
                        return self._too_long(number)
            except OSError as err:
                return os_error(err, self.path)
        return InputError("not UTF-8 text", path=self.path)

    def _cells(self, text, number) -> list:
        try:
            return next(csv.reader([text], skipinitialspace=True), [])
        except csv.Error as err:  # e.g. a value beyond the csv module's field size limit
            raise InputError(f"line {number}: not a CSV row ({err})", path=self.path) from None

    def _chunk(self, lines, first_line):
        """Parse one chunk of lines; None if it held only blank lines."""
        keep = [i for i, text in enumerate(lines) if text.strip()]
        if len(keep) < len(lines):
            lines = [lines[i] for i in keep]
        if not lines:
            return None
        numbers = [first_line + i for i in keep]
        values = self._parse(lines, numbers)
        return (*self._split_columns(values, numbers), numbers)

    def _parse(self, lines, numbers):
        try:
            values = np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2,
                                comments=None, quotechar='"',
                                converters=self._converters or None)
            if values.shape == (len(lines), self.ncols):
                return values
        except ValueError:
            pass
        return self._parse_slowly(lines, numbers)

    def _parse_slowly(self, lines, numbers):
        """Line by line, cell by cell, to report the first bad line and column exactly."""
        values = np.empty((len(lines), self.ncols), dtype=np.float64)
        for i, text in enumerate(lines):
            cells = self._cells(text, numbers[i])
            if len(cells) != self.ncols:
                raise InputError(f"line {numbers[i]}: {len(cells)} values, the header has "
                                 f"{self.ncols} (ragged row)", path=self.path)
            for j, cell in enumerate(cells):
                values[i, j] = self._cell(cell, numbers[i], j)
        return values

    def _cell(self, cell, line, column) -> float:
        if column in self.dropped:
            return 0.0
        if column == self.label_index and self.label_names is not None:
            try:
                return self.label_names.id(cell)
            except ValueError as err:
                raise InputError(f"line {line}, column {self.label!r}: {err}",
                                 path=self.path) from None
        return self._number(cell, line, column)

    def _number(self, cell, line, column) -> float:
        text = cell.strip()
        try:
            if not text or "_" in text:  # float() takes '1_000'; loadtxt does not
                raise ValueError
            return float(text)
        except ValueError:
            if not text:
                what = "empty value"
            elif column == self.label_index:
                what = (f"label {text[:40]!r} is not a number (for class names, add "
                        "--label-map auto)")
            else:
                what = f"not a number: {text[:40]!r}"
            raise InputError(f"line {line}, column {self.names[column]!r}: {what}",
                             path=self.path) from None

    def _split_columns(self, values, numbers):
        X = np.empty((len(values), self.features), dtype=np.float32)
        with np.errstate(over="ignore"):  # beyond float32 becomes Inf, reported below
            for first, stop, dest in self._runs:
                X[:, dest:dest + stop - first] = values[:, first:stop]
        y = np.ascontiguousarray(values[:, self.label_index])
        check_finite(X, y, lambda i: f"line {numbers[i]}",
                     lambda j: f"column {self.feature_names[j]!r}",
                     f"column {self.label!r}", self.path)
        return X, y


def _ignored(text) -> float:
    """A dropped column's cell, whatever it holds (loadtxt still counts the columns)."""
    return 0.0


def _runs(columns) -> list:
    """Runs of consecutive column indices as (first, stop, destination), e.g. [0, 1, 3] ->
    [(0, 2, 0), (3, 4, 2)]: copying a run is one slice, not a gather per column."""
    runs = []
    for dest, column in enumerate(columns):
        if runs and runs[-1][1] == column:
            runs[-1][1] += 1
        else:
            runs.append([column, column + 1, dest])
    return [tuple(run) for run in runs]
