"""A training loop written by hand from hpctrain's parts: MLP, get_allreduce, an optimizer.

    mpiexec -n 2 python examples/custom_loop.py [ring|doubling|shm|native|auto]

The model holds no parameters, only the layout of ONE flat float32 buffer; gradients share
the layout, so one allreduce moves all of them. Each rank sums its per-sample gradients, puts
its sample count at the end of the same buffer, and after the allreduce every rank divides by
the global count inside the optimizer's fused update: identical parameters on every rank.
"""

import sys

import numpy as np
from mpi4py import MPI

from hpctrain import MLP, get_allreduce, make_optimizer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
allreduce = get_allreduce(sys.argv[1] if len(sys.argv) > 1 else "ring")

# Each rank's own rows of a toy problem: is the sum of the features positive?
rng = np.random.default_rng(rank)
X = rng.standard_normal((500 + 100 * rank, 8)).astype(np.float32)   # uneven on purpose
y = (X.sum(axis=1) > 0).astype(np.int32)

model = MLP(features=8, hidden=(16,), activation="tanh", task="binary")
params = model.init_params(seed=0)
comm.Bcast(params, root=0)                          # the same start on every rank
optimizer = make_optimizer("adam", model.n_params, lr=1e-2)
buf = np.zeros(model.n_params + 1, dtype=np.float32)  # [gradient sum | sample count]
grad = buf[:-1]

for _ in range(200):
    rows = rng.choice(len(X), size=64, replace=False)
    loss, correct = model.loss_grad(params, X[rows], y[rows], grad)   # SUM over the rows
    buf[-1] = len(rows)
    allreduce(comm, buf)                            # every rank: the global sums
    optimizer.step(params, grad, 1.0 / buf[-1], lr=1e-2)

loss, correct = model.evaluate(params, X, y)
totals = comm.allreduce(np.array([loss, correct, len(y)]), op=MPI.SUM)
checksum = comm.allgather(float(params.sum()))
if rank == 0:
    print(f"ranks {size}  accuracy {totals[1] / totals[2]:.3f}  "
          f"same parameters on every rank: {len(set(checksum)) == 1}")
