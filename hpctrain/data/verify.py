"""`inspect --verify`: every shard's checksum, shapes and values against the manifest.

Opening the dataset already checks shapes and dtypes (reader.py); verifying adds the full
sha256 of every shard file and reads every row back through the reader, whose checks refuse
NaN or Inf features (or regression targets) and class labels outside 0..C-1 — a shard can
be edited and its checksum updated. Both read every byte, so they are kept out of the
ordinary open. Rows are read in blocks of about 16 MiB: memory does not grow with the shard.
"""

from ..errors import InputError
from .format import sha256_file
from .input_errors import os_error
from .reader import open_dataset

BLOCK_BYTES = 16 << 20


def verify_dataset(path) -> int:
    """Check every shard; return how many there are. InputError names the first bad file."""
    with open_dataset(path) as ds:
        count = 0
        block = max(1, BLOCK_BYTES // (4 * (ds.features + 1)))
        for split in ds.splits:
            first = 0
            for index, shard in enumerate(ds.shards(split)):
                _check_sha256(ds.shard_path(split, index), shard["sha256"])
                for start in range(first, first + shard["rows"], block):
                    ds.read(split, start, min(start + block, first + shard["rows"]))
                first += shard["rows"]
                count += 1
    return count


def _check_sha256(path, expected) -> None:
    try:
        actual = sha256_file(path)
    except OSError as err:
        raise os_error(err, path) from None
    if actual != expected:
        raise InputError(f"sha256 mismatch: the manifest says {expected[:16]}..., the file "
                         f"has {actual[:16]}... (changed or corrupted)", path=path)
