"""`inspect --verify`: every shard's checksum and shapes against the manifest.

Opening the dataset already checks shapes and dtypes (reader.py); verifying adds the full
sha256 of every shard file, which reads every byte and so is kept out of the ordinary open.
"""

from ..errors import InputError
from .format import sha256_file
from .input_errors import os_error
from .reader import open_dataset


def verify_dataset(path) -> int:
    """Check every shard; return how many there are. InputError names the first bad file."""
    with open_dataset(path) as ds:
        count = 0
        for split in ds.splits:
            for index, shard in enumerate(ds.shards(split)):
                _check_sha256(ds.shard_path(split, index), shard["sha256"])
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
