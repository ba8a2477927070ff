"""Under mpiexec: hpctrain.fit with each rank holding an uneven part of one dataset.

    mpiexec -n P python fit_ranks.py OUT.npy [local|global]

Rows are split unevenly (rank r gets a share growing with r); with shuffle global and a
global batch the model must not depend on P. Rank 0 saves the parameters and a checkpoint.
"""

import sys

import numpy as np
from mpi4py import MPI

import hpctrain

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
out, shuffle = sys.argv[1], sys.argv[2]

rng = np.random.default_rng(7)
X = rng.standard_normal((301, 6)).astype(np.float32)
y = (X @ rng.standard_normal(6) > 0).astype(np.int32)
weights = np.arange(1, size + 1)
cuts = np.concatenate(([0], np.cumsum(weights * len(X) // weights.sum())))
cuts[-1] = len(X)
mine = slice(cuts[rank], cuts[rank + 1])

model = hpctrain.fit(X[mine], y[mine], hidden=(5,), epochs=10, global_batch=40,
                     shuffle=shuffle, allreduce="ring", lr=3e-2, seed=1)
same = comm.allgather(model.params.tobytes())
assert all(p == same[0] for p in same), "ranks disagree on the parameters"
result = model.evaluate(X[mine], y[mine])
assert result["rows"] == len(X), result
model.save(out.replace(".npy", ".h5"))   # collective: rank 0 writes, all wait for it
if rank == 0:
    np.save(out, model.params)
    print(f"ok accuracy {result['accuracy']:.4f}")
