"""HDF5-sharded datasets: a directory of `manifest.json` + `<split>/shard-00000.h5 ...`.

The format is described in docs/DATA.md and the API in docs/INTERFACES.md ("Datasets").
NumPy and h5py load only when a dataset is opened (PEP 562 lazy attributes), so that a
command can set thread counts first (hpctrain.runtime.configure).
"""

from .ranks import aligned_slice, rank_slice

__all__ = ["Dataset", "aligned_slice", "open_dataset", "rank_slice"]


def __getattr__(name):
    if name in ("Dataset", "open_dataset"):
        from . import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
