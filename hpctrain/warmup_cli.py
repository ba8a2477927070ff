"""`hpctrain warmup`: compile every kernel a training run needs into Numba's cache, once.

A cold start compiles about 20 kernel specializations (5-7 s on one core of the 2-core
development machine; split over a node's ranks, hpctrain.node_compile); each later run loads
them from the cache in under a second.
On a cluster the cache lives in the home or project file system, so one warm-up per node
type (CPU model) and installed version serves every job after it: run it once per node
type, as two ranks on one node (`mpiexec -n 2 hpctrain warmup`, or `srun -N1 -n2 hpctrain
warmup` first in a batch script): with two ranks the allreduces' kernels compile too.

It trains tiny in-memory models through the same loop as `hpctrain train` (hpctrain.fit):
each task (binary, multiclass, regression: their labels are int32 or float32, two
specializations), each optimizer (Adam, SGD with and without momentum), each allreduce
that has kernels of its own (ring, doubling, shm, auto's checks), then predicts and evaluates, so
validation, `evaluate` and `predict` find their kernels too; last, every allreduce's own
kernels directly (auto measures, and so compiles, nothing where it has chosen before).
"""

import os
import time

import click
import numpy as np

# (task, optimizer, its settings, allreduce): every specialization a run can need
# (auto last: it measures the others, and its checks have kernels of their own; what it
# measures for the tiny gradient's size class is a real measurement of this node, cached)
RUNS = (("binary", "adam", {}, "ring"), ("multiclass", "sgd", {"momentum": 0.9}, "shm"),
        ("regression", "sgd", {"momentum": 0.0}, "doubling"), ("binary", "adam", {}, "auto"))


def tiny_problem(task: str, rng):
    X = rng.standard_normal((64, 3)).astype(np.float32)
    if task == "regression":
        return X, X[:, 0].astype(np.float32)
    return X, rng.integers(0, 2 if task == "binary" else 3, 64).astype(np.int32)


def warm_up(device: str = "cpu") -> float:
    """Compile (or load) every kernel; the seconds it took."""
    # MPI and Numba load here, after the CLI fixed thread counts
    from .comm.kernel_jobs import KERNELS, kernel_jobs
    from .fitting import fit
    from .node_compile import compile_on_node
    from .world import world

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    for task, optimizer, settings, allreduce in RUNS:
        X, y = tiny_problem(task, rng)
        model = fit(X, y, hidden=(4,), epochs=1, task=task, optimizer=optimizer,
                    batch_size=16, device=device, allreduce=allreduce, **settings)
        model.evaluate(X, y)
        model.predict(X)
    # every algorithm's kernels, directly: auto measures nothing (and so compiles none of
    # them) where it has chosen before on this machine
    compile_on_node(world(), kernel_jobs(world(), np.float32, KERNELS))
    return time.perf_counter() - started


@click.command()
@click.option("--device", default="cpu", show_default=True, type=click.Choice(("cpu", "cuda")),
              help="Which kernels: the CPU's, or the GPU's (run it on a GPU node).")
def warmup(device):
    """Compile every kernel a run needs into Numba's cache, once per node type.

    Later runs on nodes with the same CPU (and the same hpctrain) then start without
    compiling. Run it as two ranks on one node (mpiexec -n 2 hpctrain warmup), before the
    job: with one rank the allreduce kernels are left to compile in the first job.
    """
    where = os.environ.get("NUMBA_CACHE_DIR") or "Numba's cache (beside the kernels, or the " \
        "user cache where that is read-only)"
    from .world import current_rank, world

    root = current_rank() == 0
    if root:
        click.echo(f"hpctrain: compiling the {device} kernels into {where} ...", err=True)
    seconds = warm_up(device)
    if root:
        which = "every" if world().Get_size() > 1 else "every one-rank"
        click.echo(f"warm: {which} {device} kernel is in the cache ({seconds:.1f} s)")
