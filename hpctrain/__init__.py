"""hpctrain: data-parallel training and scaling studies on MPI clusters.

The Python API, in one line:

    model = hpctrain.fit(X, y, hidden=(64,), epochs=20)   # also under mpiexec -n P

and its parts: `MLP` (the flat-buffer model), `make_optimizer` / `SGD` / `Adam`,
`get_allreduce(name)` (ring, doubling, shm, native, auto), `open_dataset(dir)`,
`TrainConfig` + `train(cfg)` (what `hpctrain train` runs), `load(checkpoint)`.

Every name is imported on first use: `import hpctrain` itself starts neither MPI nor Numba,
so a script can set thread counts (hpctrain.runtime.configure) before they load.
"""

import importlib
import os

# Where colorama is installed, Numba colours its messages through it, and colorama then writes
# a reset (ESC[0m) to stdout at exit whenever stdout is a terminal. Open MPI gives every rank
# a pty for stdout even when mpirun's output goes to a file, so plain logs (and scripts'
# results) got one ESC[0m per rank. hpctrain prints no colour: Numba need not either. Set
# here, on import (before Numba loads), so the Python API is covered as well as the CLI.
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "fit": "hpctrain.fitting",
    "load": "hpctrain.fitting",
    "FittedModel": "hpctrain.fitting",
    "MLP": "hpctrain.model",
    "make_optimizer": "hpctrain.optim",
    "SGD": "hpctrain.optim",
    "Adam": "hpctrain.optim",
    "get_allreduce": "hpctrain.comm",
    "open_dataset": "hpctrain.data",
    "TrainConfig": "hpctrain.config",
    "train": "hpctrain.training",
    "InputError": "hpctrain.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hpctrain' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # found once; later lookups are plain attribute reads
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
