""""compiling kernels (first run only)": said on rank 0 before a start-up that would otherwise
sit silent for several seconds while Numba compiles.

Cold or warm is read from Numba's own cache index of the training kernel (`mlp.loss_grad`, the
one call that holds forward, loss and backward): warm when the index, valid for the current
source, has an entry compiled for this CPU. That is what Numba itself checks before it
compiles; reading the index costs one small file. Where Numba's cache layout is not the one
known here, nothing is said (never a wrong claim, never a failure).
"""

import os


def kernels_cached() -> bool | None:
    """True: the training kernel is in the Numba cache for this CPU; False: it will be
    compiled; None: cannot tell."""
    try:
        from .kernels import mlp

        dispatcher = mlp.loss_grad
        index = dispatcher._cache._cache_file._load_index()  # {} when absent or stale
        magic = dispatcher.targetctx.codegen().magic_tuple()
        return any(key[1] == magic for key in index)
    except Exception:  # another Numba's internals: say nothing rather than guess
        return None


def say_if_compiling(warn) -> None:
    """Rank 0, before the kernels' first call: one line when they are not cached yet."""
    if kernels_cached() is False:
        where = os.environ.get("NUMBA_CACHE_DIR", "Numba's cache")
        warn(f"hpctrain: compiling kernels (first run only; cached in {where}) ...")
