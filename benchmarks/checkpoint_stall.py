"""How long a checkpoint stalls training: W2 and a 2048x2048 model.

Rank 0 writes checkpoints synchronously, at a step boundary; the other ranks wait for it in
the next step's allreduce, so one checkpoint costs the whole job the time of one `save`.
Measured two ways, side by side in one run:

  save     checkpoint.save of the model's parameters and Adam state (3 x n_params float32),
           median of --repeats, into a directory on the same disk as the run
  in a job mpiexec -n 2 hpctrain train, --steps S with --checkpoint-every E and with only
           the final checkpoint: (wall_with - wall_without) / (extra checkpoints); the
           step time from summary.json puts the stall in steps

    python benchmarks/checkpoint_stall.py [--repeats 5] [--steps 60] [--every 10] [--out DIR]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from hpctrain.bench.workloads import WORKLOADS
from hpctrain.launcher import find_mpiexec

W2 = WORKLOADS["W2"]
MODELS = {  # name -> (features, hidden, classes)
    "W2": (W2.features, W2.hidden, W2.classes),
    "2048x2048": (W2.features, (2048, 2048), W2.classes),
}


def time_save(features, hidden, classes, repeats, where):
    from hpctrain import checkpoint
    from hpctrain.model import MLP
    from hpctrain.optim import make_optimizer

    model = MLP(features, hidden=hidden, task="multiclass", classes=classes)
    params = model.init_params(0)
    opt = make_optimizer("adam", model.n_params, lr=1e-3)
    state = opt.state_dict()
    for buf in state["buffers"].values():
        buf[:] = np.random.default_rng(1).standard_normal(buf.shape)
    seconds = []
    for r in range(repeats):
        began = time.perf_counter()
        checkpoint.save(where, model, params, state, r + 1, 0, r + 1, None, {})
        seconds.append(time.perf_counter() - began)
    size = os.path.getsize(checkpoint.checkpoint_path(where, repeats))
    return model.n_params, size, statistics.median(seconds)


def job_wall(data, hidden, steps, every, out):
    cmd = [find_mpiexec(), "-n", "2", sys.executable, "-m", "hpctrain", "train",
           "--data", data, "--out", out, "--force", "--hidden", ",".join(map(str, hidden)),
           "--batch-size", str(W2.local_batch), "--steps", str(steps), "--allreduce", "ring",
           "--checkpoint-every", str(every), "--checkpoint-every-s", "0",
           "--keep-checkpoints", "2", "--threads", "1", "--log-every", str(steps)]
    began = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    with open(os.path.join(out, "summary.json")) as f:
        return wall, json.load(f)["step_time_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--out", default=None, help="scratch directory (default: a new one here)")
    args = ap.parse_args()
    scratch = args.out or tempfile.mkdtemp(prefix="ckpt-stall-", dir=".")
    data = os.path.join(scratch, "data")
    subprocess.run([sys.executable, "-m", "hpctrain", "data", "synth", "--out", data,
                    "--samples", str(4 * W2.global_batch), "--features", str(W2.features),
                    "--classes", str(W2.classes), "--shards", "2", "--force"],
                   check=True, stdout=subprocess.DEVNULL)
    extra = args.steps // args.every - 1  # the final checkpoint is written in both runs
    print("| model | parameters | file MB | save s (median) | job stall per checkpoint s | "
          "step s | stall in steps |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (features, hidden, classes) in MODELS.items():
        n, size, save_s = time_save(features, hidden, classes, args.repeats,
                                    os.path.join(scratch, f"save-{name}"))
        without, step_s = job_wall(data, hidden, args.steps, 0, os.path.join(scratch, "a"))
        with_, _ = job_wall(data, hidden, args.steps, args.every, os.path.join(scratch, "b"))
        stall = (with_ - without) / extra
        print(f"| {name} | {n:,} | {size / 1e6:.1f} | {save_s:.3f} | {stall:.3f} | "
              f"{step_s:.3f} | {stall / step_s:.1f} |", flush=True)
    if args.out is None:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
