"""One rank of PyTorch DistributedDataParallel (gloo, one thread) on a WORKLOADS.md model.

Launched by benchmarks/train.py under the same mpiexec as hpctrain, so both run on the same
ranks and cores. Rank and size come from MPI; gloo rendezvous on localhost:PORT.
Prints one JSON line on rank 0: samples/s (median over repeats of the timed steps).
"""

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from mpi4py import MPI  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402


def build(features, hidden, classes):
    layers, width = [], features
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 1 if classes == 2 else classes))
    return torch.nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--hidden", required=True)
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--local-batch", type=int, required=True)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--port", type=int, default=29511)
    a = p.parse_args()
    torch.set_num_threads(1)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(a.port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    torch.manual_seed(0)
    model = DistributedDataParallel(build(a.features, [int(h) for h in a.hidden.split(",")],
                                          a.classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(rank)
    pool = 4 * a.local_batch  # rows to index batches from, as hpctrain gathers its batches
    X = torch.from_numpy(rng.standard_normal((pool, a.features), dtype=np.float32))
    if a.classes == 2:
        y = torch.from_numpy(rng.integers(0, 2, pool).astype(np.float32))
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        y = torch.from_numpy(rng.integers(0, a.classes, pool))
        loss_fn = torch.nn.CrossEntropyLoss()

    def step(i):
        idx = torch.from_numpy(rng.integers(0, pool, a.local_batch))
        xb, yb = X[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        out = model(xb)
        loss = loss_fn(out.squeeze(1) if a.classes == 2 else out, yb)
        loss.backward()
        opt.step()

    for i in range(3):
        step(i)
    rates = []
    for _ in range(a.repeats):
        dist.barrier()
        t0 = time.perf_counter()
        for i in range(a.steps):
            step(i)
        dist.barrier()
        rates.append(a.local_batch * size * a.steps / (time.perf_counter() - t0))
    if rank == 0:
        print(json.dumps({"ranks": size, "samples_per_s": float(np.median(rates))}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
