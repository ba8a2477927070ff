"""Allreduce algorithms behind one registry: name -> fn(comm, buf) summing buf in place.

Each algorithm lives in its own module as a plain function `fn(comm, buf)` on a flat,
contiguous float32/float64 NumPy buffer. The registry wraps it with the agreement of
`checks.agree` (bad or mismatched buffers raise InputError on every rank, no rank left
waiting; one collective on the first call per communicator, length and dtype), so callers
get the same safety from every algorithm. Adding an algorithm is one line in SOURCES.
An algorithm module must not import ALGORITHMS at import time (a cycle): import siblings.
"""

import functools
import importlib

from ..errors import InputError
from .checks import agree

# name -> "module:function" of the unchecked algorithm; one line registers one more.
SOURCES = {
    "native": "hpctrain.comm.native:native_allreduce",
    "ring": "hpctrain.comm.ring:ring_allreduce",
    "tree": "hpctrain.comm.tree:tree_allreduce",
    "shm": "hpctrain.comm.shm:shm_allreduce",
    "auto": "hpctrain.comm.auto:auto_allreduce",
}


def checked(algorithm):
    """The algorithm behind the collective buffer check, run on a private communicator."""

    @functools.wraps(algorithm)
    def allreduce(comm, buf) -> None:
        private, flat = agree(comm, buf)
        algorithm(private, flat)

    return allreduce


def _resolve(source: str):
    module, function = source.split(":")
    return getattr(importlib.import_module(module), function)


ALGORITHMS = {name: checked(_resolve(source)) for name, source in SOURCES.items()}


def get_allreduce(name: str):
    """The registered allreduce called `name`; InputError listing the known names otherwise."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        known = ", ".join(sorted(ALGORITHMS))
        raise InputError(f"unknown allreduce algorithm {name!r} (known: {known})") from None
