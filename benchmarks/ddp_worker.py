"""One rank of PyTorch DistributedDataParallel (gloo, one thread) on a docs/WORKLOADS.md model.

Launched by benchmarks/ddp_compare.py under the same mpiexec as hpctrain, so both run on the
same ranks and cores. Rank and size come from MPI; gloo rendezvous on localhost:PORT.
Prints one JSON line on rank 0: samples/s (median over repeats of the timed steps).
"""

from hpctrain.runtime import set_threads

# One thread per rank, as hpctrain's ranks run (unless the caller chose otherwise). torch and
# NumPy's BLAS read their pool sizes once, when they load, so this comes before either is
# imported (hpctrain.runtime imports only os).
set_threads(1, overwrite=False)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from mpi4py import MPI  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

from hpctrain.bench.workloads import WORKLOADS  # noqa: E402


def build(w):
    sizes, layers = w.layer_sizes, []
    for i, o in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [torch.nn.Linear(i, o), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    return torch.nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--port", type=int, default=29511)
    a = p.parse_args()
    w = WORKLOADS[a.workload]
    torch.set_num_threads(1)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(a.port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    torch.manual_seed(0)
    model = DistributedDataParallel(build(w))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(rank)
    pool = 4 * w.local_batch  # rows to index batches from, as hpctrain gathers its batches
    X = torch.from_numpy(rng.standard_normal((pool, w.features), dtype=np.float32))
    if w.classes == 2:
        y = torch.from_numpy(rng.integers(0, 2, pool).astype(np.float32))
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        y = torch.from_numpy(rng.integers(0, w.classes, pool))
        loss_fn = torch.nn.CrossEntropyLoss()

    def step(i):
        idx = torch.from_numpy(rng.integers(0, pool, w.local_batch))
        xb, yb = X[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        out = model(xb)
        loss = loss_fn(out.squeeze(1) if w.classes == 2 else out, yb)
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
        rates.append(w.local_batch * size * a.steps / (time.perf_counter() - t0))
    if rank == 0:
        print(json.dumps({"ranks": size, "samples_per_s": float(np.median(rates))}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
