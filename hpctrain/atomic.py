"""Replacing a file so that readers see the old one or the new one, never half of either.

The new content goes to a fresh temporary file beside the target, created exclusively
(mkstemp: O_CREAT|O_EXCL, never through a pre-existing name or a planted symlink), with the
permissions a plain open() would have given; it is fsynced, renamed over the target, and the
directory is fsynced so the rename itself survives a crash. On any failure (disk full, an
exception, Ctrl-C) the temporary file is removed and the target is untouched.
"""

import os
import tempfile
from contextlib import contextmanager

from .errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def replacing(path):
    """`with replacing(path) as tmp:` write the new file at `tmp` (by name); on leaving the
    block it becomes `path`. An OSError on the way (ENOSPC, EROFS, EACCES) is an OutputError
    naming `path`."""
    tmp = temporary_beside(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise OutputError(path, err) from None
        raise
    sync_directory(os.path.dirname(os.path.abspath(path)))


def temporary_beside(path) -> str:
    """A fresh empty file `.NAME.XXXX.tmp` beside `path`, created exclusively, with the
    permissions a plain open() would give; OutputError naming `path` if it cannot be made.
    For writers that cannot use `replacing` (several processes writing one file)."""
    folder, name = os.path.split(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise OutputError(path, err) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
    except OSError as err:
        os.unlink(tmp)
        raise OutputError(path, err) from None
    return tmp


@contextmanager
def writing(path):
    """Turn an OSError while writing `path` (in place: an append-only log) into an
    OutputError naming it."""
    try:
        yield
    except OSError as err:
        raise OutputError(path, err) from None


def sync_directory(folder) -> None:
    """fsync a directory, so that a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
