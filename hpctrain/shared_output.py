"""One output file that every rank writes at the same time, each its own rows, in row order.

Nobody gathers the rows: rank 0 creates a temporary file beside the output, every rank writes
its own byte range of it, and rank 0 renames it to the output only once every rank has
written and fsynced (docs/RELIABILITY.md, "Distributed predict"). So the output is complete
and in row order, or it does not exist.

- .npy and .h5: every row has the same size, so rank r's rows start at a byte offset known
  before anything is written: the array's offset in the file (after the .npy header; the
  HDF5 dataset is contiguous and allocated at creation, so its offset is fixed) plus first
  row x row bytes. Ranks pwrite there in parallel: plain POSIX writes to disjoint ranges,
  no MPI-IO, no HDF5 built for MPI.
- .csv: rows have different lengths. Each rank streams its text to its own part file, an
  exclusive scan of the part sizes gives its byte offset, and it copies its part into that
  range of the shared file (copy_file_range: the kernel moves the bytes) in parallel.
"""

import glob
import os

import numpy as np

from .atomic import sync_directory, temporary_beside
from .errors import OutputError

DATASET = "predictions"  # the array's name in an .h5 output
COPY_BYTES = 64 << 20  # bytes per copy_file_range call


def create(out, rows: int, width: int, attrs: dict) -> tuple[str, int | None]:
    """Rank 0: the temporary file for `rows` predictions of `width` values (1: a vector);
    returns (its path, the byte offset of row 0; None for a CSV or an empty .h5)."""
    remove_quietly(leftovers(out))
    tmp = temporary_beside(out)
    try:
        return tmp, _layout(out, tmp, rows, width, attrs)
    except BaseException as err:
        os.unlink(tmp)
        if isinstance(err, OSError):
            raise OutputError(out, err) from None
        raise


def _layout(out, tmp, rows, width, attrs):
    shape = (rows,) if width == 1 else (rows, width)
    if out.endswith(".npy"):
        with open(tmp, "r+b") as f:
            np.lib.format.write_array_header_1_0(f, {
                "descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                "fortran_order": False, "shape": shape})
            offset = f.tell()
            f.truncate(offset + rows * width * 4)  # a sparse file: ranks fill it in
        return offset
    if out.endswith(".h5"):
        return _h5_layout(tmp, shape, attrs)
    return None


def _h5_layout(tmp, shape, attrs):
    """A contiguous float32 dataset allocated now (never filled), so its bytes have one
    fixed place in the file that raw writes can reach."""
    import h5py

    with h5py.File(tmp, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        space = h5py.h5s.create_simple(shape)
        dataset = h5py.h5d.create(f.id, DATASET.encode(), h5py.h5t.IEEE_F32LE, space,
                                  dcpl=dcpl)
        offset = dataset.get_offset()
        for key, value in attrs.items():
            f[DATASET].attrs[key] = value
    return offset


class RowWriter:
    """This rank's rows of a .npy or .h5 file, written where they belong (pwrite)."""

    def __init__(self, tmp, offset, first_row: int, width: int):
        self.fd = os.open(tmp, os.O_WRONLY)
        self.row_bytes = 4 * width
        self.position = (offset or 0) + first_row * self.row_bytes

    def write(self, predictions: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(predictions, dtype="<f4")).cast("B")
        _pwrite_all(self.fd, data, self.position)
        self.position += len(data)

    def finish(self, comm) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


class CsvWriter:
    """This rank's CSV text: streamed to a part file, then copied into the shared file at
    the offset the ranks before it leave (an exclusive scan of the part sizes)."""

    def __init__(self, tmp, rank: int):
        self.tmp, self.part = tmp, part_path(tmp, rank)
        self.file = open(self.part, "x", newline="", encoding="utf-8")

    def write_lines(self, text: str) -> None:
        self.file.write(text)

    def finish(self, comm) -> None:
        self.file.close()
        size = os.path.getsize(self.part)
        offset = comm.exscan(size) or 0  # rank 0's exscan is None
        src, dst = os.open(self.part, os.O_RDONLY), os.open(self.tmp, os.O_WRONLY)
        try:
            _copy_range(src, dst, size, offset)
            os.fsync(dst)
        finally:
            os.close(src)
            os.close(dst)
        os.unlink(self.part)


def part_path(tmp, rank: int) -> str:
    return f"{tmp}.part-{rank}"


def publish(tmp, out) -> None:
    """Rank 0, after every rank finished: the complete file takes the output's name."""
    try:
        os.replace(tmp, out)
    except OSError as err:
        raise OutputError(out, err) from None
    sync_directory(os.path.dirname(os.path.abspath(out)))


def leftovers(out) -> list:
    """The hidden temporary files of an earlier job writing `out` that was killed (SIGKILL,
    a node lost: nobody could remove them); the next job writing `out` removes them."""
    folder, name = os.path.split(os.path.abspath(out))
    stem = os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")
    return glob.glob(stem) + glob.glob(stem + ".part-*")


def remove_quietly(paths) -> None:
    """What a failed job leaves: removed as far as it can be (it may be gone already)."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def _pwrite_all(fd, data, position) -> None:
    while len(data):
        done = os.pwrite(fd, data, position)
        data, position = data[done:], position + done


def _copy_range(src, dst, size, offset) -> None:
    done = 0
    while done < size:
        try:
            moved = os.copy_file_range(src, dst, min(COPY_BYTES, size - done), done,
                                       offset + done)
        except (OSError, AttributeError):  # a file system or OS without it: read, write
            moved = os.pwrite(dst, os.pread(src, min(COPY_BYTES, size - done), done),
                              offset + done)
        if moved == 0:
            raise OSError(5, "the part file ended early")
        done += moved
