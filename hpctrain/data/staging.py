"""Atomic replacement of an output directory: build next to it, then rename into place.

A dataset is written into a hidden temporary directory beside `--out`. Only when it is
complete is it renamed to `--out`; on any failure the temporary directory is removed, so a
reader never sees a half-written dataset and a failed `--force` leaves the old one intact.

This protects against the writing process failing, not against power loss: nothing is
fsync'ed (datasets are big and can be rebuilt), and `hpctrain data inspect --verify` tells
whether one survived a crash of the machine.
"""

import os
import shutil
import tempfile

from ..errors import InputError
from .format import MANIFEST


def check_out(out, force: bool) -> str:
    """Refuse an existing `out` unless force; never replace something that is not a dataset.

    Returns the absolute path. Runs before any work so that a refusal costs nothing.
    """
    out = os.path.abspath(out)
    if not os.path.lexists(out):
        return out
    if not force:
        raise InputError("already exists (use --force to replace it)", path=out)
    # --force replaces an old dataset or an empty directory, never an arbitrary folder or
    # file: a mistyped `--out ~ --force` must not delete a home directory.
    is_dataset = os.path.isdir(out) and os.path.isfile(os.path.join(out, MANIFEST))
    is_empty_dir = os.path.isdir(out) and not os.path.islink(out) and not os.listdir(out)
    if not (is_dataset or is_empty_dir):
        raise InputError("exists and is not an hpctrain dataset; not replacing it, even "
                         "with --force", path=out)
    return out


class Staging:
    """`with Staging(out) as tmp: ...write into tmp...; stage.commit()`."""

    def __init__(self, out):
        self.out = os.path.abspath(out)
        self.parent = os.path.dirname(self.out)
        self.dir = None
        self.committed = False

    def __enter__(self):
        name = os.path.basename(self.out)
        try:
            os.makedirs(self.parent, exist_ok=True)
            self.dir = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=self.parent)
            # mkdtemp makes it private (0700); a dataset gets the usual permissions.
            os.chmod(self.dir, 0o777 & ~_umask())
        except OSError as err:
            raise InputError(f"cannot create the output: {err.strerror}",
                             path=self.out) from None
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.committed and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def commit(self) -> None:
        """Move the finished directory to `out`, replacing an old one only now."""
        old = None
        if os.path.lexists(self.out):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(self.out)}.old-",
                                   dir=self.parent)
            os.rename(self.out, os.path.join(old, "dataset"))
        try:
            os.rename(self.dir, self.out)
        except OSError as err:
            if old is not None:  # put the old dataset back where it was
                os.rename(os.path.join(old, "dataset"), self.out)
                shutil.rmtree(old, ignore_errors=True)
            raise InputError(f"cannot move the finished dataset into place ({err.strerror}); "
                             "did something else create it meanwhile?", path=self.out) from None
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
