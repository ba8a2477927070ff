"""Sealed files: the first bytes hold the checksum of the rest, checked before anything parses it.

A checkpoint is an HDF5 file, and HDF5's parser trusts the bytes it reads: a single flipped
byte can send it into an endless loop or an allocation of terabytes. So the checksum must be
readable without the parser. HDF5 leaves a "user block" at the start of a file for exactly
this kind of use (h5py: `File(..., userblock_size=N)`; HDF5 itself never reads or writes it),
and the seal lives there:

    hpctrain-seal-1\\n
    sha256 <64 hex digits>\\n        of every byte after the user block
    bytes <n>\\n                     how many bytes follow the user block
    <spaces up to USERBLOCK bytes>

`seal(path)` writes it once the file is complete; `check(path)` reads it and hashes the rest,
streaming, before the file is opened by h5py. A file without a seal is reported as such.
"""

import hashlib
import os

USERBLOCK = 512  # HDF5 wants a power of two >= 512
MAGIC = b"hpctrain-seal-1\n"
CHUNK = 1 << 20
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class Broken(Exception):
    """The file is not what its seal says (or has none): one line saying how."""


class Unsealed(Broken):
    """A plain HDF5 file without a seal: written before seals existed."""


def _digest_after_userblock(f) -> tuple[str, int]:
    f.seek(USERBLOCK)
    digest, n = hashlib.sha256(), 0
    while block := f.read(CHUNK):
        digest.update(block)
        n += len(block)
    return digest.hexdigest(), n


def seal(path) -> None:
    """Write the seal into the user block of a complete file (made with USERBLOCK)."""
    with open(path, "r+b") as f:
        digest, n = _digest_after_userblock(f)
        header = MAGIC + f"sha256 {digest}\nbytes {n}\n".encode()
        f.seek(0)
        f.write(header.ljust(USERBLOCK, b" "))
        f.flush()


def read_seal(head: bytes) -> tuple[str, int]:
    """(sha256, byte count) from a user block; Broken if it holds no valid seal."""
    if not head.startswith(MAGIC):
        if head.startswith(HDF5_SIGNATURE):
            raise Unsealed("has no checksum seal (written by hpctrain before 0.2?)")
        raise Broken("has no checksum seal at its start (not an hpctrain checkpoint, or its "
                     "first bytes are damaged)")
    try:
        lines = head[len(MAGIC):].split(b"\n")
        key1, digest = lines[0].decode("ascii").split(" ")
        key2, count = lines[1].decode("ascii").split(" ")
        if key1 != "sha256" or key2 != "bytes" or len(digest) != 64:
            raise ValueError
        int(digest, 16)
        return digest, int(count)
    except (ValueError, IndexError, UnicodeDecodeError):
        raise Broken("its checksum seal is damaged") from None


def check(path) -> None:
    """Raise Broken unless the file's bytes are exactly those its seal was made of."""
    with open(path, "rb") as f:
        digest, count = read_seal(f.read(USERBLOCK))
        size = os.fstat(f.fileno()).st_size - USERBLOCK
        if size != count:
            raise Broken(f"is truncated or extended: {max(size, 0)} bytes after the seal, "
                         f"{count} expected")
        if _digest_after_userblock(f)[0] != digest:
            raise Broken("fails its checksum (corrupted)")
