"""Under mpiexec: hpctrain.fit with every allreduce, rows split unevenly over the ranks.

    mpiexec -n P python reproducible_fit.py on|off ALGORITHMS

Rank r holds a share of the 1003 rows growing with r (rank 0 may hold few). Each algorithm
trains the same model for 30 steps (two epochs and more), global batch 72 in micro-batches of
8 (the epoch's last batch holds 1003 - 13 * 72 = 67 rows: a short micro-batch).
Rank 0 prints `ALGORITHM PARAMS_SHA256 LOSS_HEX ACCURACY_HEX` per algorithm: the sha256 of
the final parameters and the exact bits of the final logged loss and accuracy.
"""

import hashlib
import sys

import numpy as np
from mpi4py import MPI

import hpctrain

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
reproducible, algorithms = sys.argv[1] == "on", sys.argv[2].split(",")

rng = np.random.default_rng(11)
X = rng.standard_normal((1003, 7)).astype(np.float32)
y = (X @ rng.standard_normal((7, 3))).argmax(axis=1).astype(np.int32)
weights = np.arange(1, size + 1) ** 2
cuts = np.concatenate(([0], np.cumsum(weights * len(X) // weights.sum())))
cuts[-1] = len(X)
mine = slice(cuts[rank], cuts[rank + 1])

for name in algorithms:
    model = hpctrain.fit(X[mine], y[mine], hidden=(9, 5), epochs=None, steps=30,
                         global_batch=72, shuffle="global", allreduce=name, lr=1e-2, seed=3,
                         reproducible=reproducible, micro_batch=8, log_every=30)
    if rank == 0:
        digest = hashlib.sha256(model.params.tobytes()).hexdigest()
        final = model.summary["final"]
        print(f"{name} {digest} {float(final['loss']).hex()} {float(final['accuracy']).hex()}",
              flush=True)
