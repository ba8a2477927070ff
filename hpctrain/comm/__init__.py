"""Allreduce algorithms behind one registry: name -> fn(comm, buf) summing buf in place.

`get_allreduce(name)` hands out a registered algorithm (`registry.ALGORITHMS`): native
(MPI's own), ring, doubling (recursive doubling; `tree` is its old name and still accepted),
shm (through node-shared memory) and auto (the fastest of them, measured per message size).
Each is checked by `agreement`: bad or mismatched buffers raise InputError on every rank, no
rank left waiting.

Importing this package is free: the registry, and with it Numba and MPI, loads inside
`get_allreduce`, because MPI and Numba should start only when an allreduce is asked for.
"""

from ..errors import InputError


def names() -> list[str]:
    """The registered algorithm names, sorted (aliases such as `tree` not included)."""
    from . import registry  # loads Numba and the algorithms: only when asked

    return sorted(registry.ALGORITHMS)


def canonical_name(name: str) -> str:
    """The registered name that `name` means (`tree` -> `doubling`); InputError if none."""
    from . import registry  # loads Numba and the algorithms: only when asked

    name = registry.ALIASES.get(name, name)
    if name not in registry.ALGORITHMS:
        known = ", ".join(sorted(registry.ALGORITHMS))
        raise InputError(f"unknown allreduce algorithm {name!r} (known: {known})")
    return name


def get_allreduce(name: str):
    """The registered allreduce called `name` (or an alias of it); InputError listing the
    known names otherwise."""
    from . import registry  # loads Numba and the algorithms: only when asked

    return registry.ALGORITHMS[canonical_name(name)]
