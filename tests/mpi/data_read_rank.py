"""Worker: every rank opens a dataset and reads only its own rows of every split.

`mpiexec -n P python data_read_rank.py DATASET`: the ranks' rows, gathered on rank 0, must be
the whole split, each row once and in order, with shares balanced within one row. A broken
dataset is found by every rank through collective_check: rank 0 prints it, all exit 2.
"""

import sys

import numpy as np
from mpi4py import MPI

from hpctrain.data import open_dataset
from hpctrain.errors import EXIT_BAD_INPUT, InputError
from hpctrain.failures import collective_check


def main(path) -> None:
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    try:
        ds = collective_check(comm, open_dataset, path)
    except InputError as err:
        if rank == 0:
            print(f"hpctrain: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    for split in ds.splits:
        X, y = ds.read_rank(split, rank, size)
        parts = comm.gather((X, y), root=0)
        if rank == 0:
            whole_X, whole_y = ds.read(split, 0, ds.rows(split))
            sizes = [len(part[1]) for part in parts]
            assert max(sizes) - min(sizes) <= 1, sizes
            assert np.array_equal(np.concatenate([p[0] for p in parts]), whole_X), split
            assert np.array_equal(np.concatenate([p[1] for p in parts]), whole_y), split
            print(f"{split} {ds.rows(split)} rows: {' '.join(map(str, sizes))}")
    ds.close()


if __name__ == "__main__":
    main(sys.argv[1])
