"""Ranks x threads per rank on one node: which layout trains a workload fastest?

    python benchmarks/layouts.py --cores 16 --workload W2 --global-batch 8192 \
        --launcher "mpirun --bind-to core" --algorithm auto

For every way of writing the cores as R ranks x T threads (16x1, 8x2, 4x4, 2x8, 1x16), one
`hpctrain train --threads T` job under `LAUNCHER -n R --map-by slot:PE=T` (Open MPI's way
of giving each rank T cores; --map-args changes it) with the same global batch (strong
scaling), so the layouts do the same work per step. Prints samples/s per layout and the best.
"""

import argparse
import json
import os
import shlex
import sys
import tempfile

from ddp_compare import launch, make_dataset

from hpctrain.bench.workloads import WORKLOADS
from hpctrain.launcher import find_mpiexec


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--workload", default="W2")
    p.add_argument("--global-batch", type=int, default=8192)
    p.add_argument("--algorithm", default="auto")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--launcher")
    p.add_argument("--map-args", default="--map-by slot:PE={threads}")
    p.add_argument("--timeout", type=int, default=300)
    a = p.parse_args()
    launcher = a.launcher or shlex.quote(find_mpiexec())
    w = WORKLOADS[a.workload]
    layouts = [(a.cores // t, t) for t in range(1, a.cores + 1) if a.cores % t == 0]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        data = make_dataset(folder, w, a.cores)
        for ranks, threads in layouts:
            run = os.path.join(folder, f"run-{ranks}x{threads}")
            a.launcher = f"{launcher} {a.map_args.format(threads=threads)}" if threads > 1 \
                else launcher
            cmd = [sys.executable, "-m", "hpctrain", "train", "--data", data, "--out", run,
                   "--force", "--hidden", w.hidden_flag, "--global-batch",
                   str(a.global_batch), "--steps", str(a.steps), "--log-every", str(a.steps),
                   "--allreduce", a.algorithm, "--threads", str(threads), "--epochs", "1000"]
            launch(a.launcher, ranks, cmd, a.timeout)
            with open(os.path.join(run, "summary.json")) as f:
                s = json.load(f)
            results[(ranks, threads)] = s["samples_per_s"]
            print(f"{a.workload} G={a.global_batch} {ranks:>2} ranks x {threads:>2} threads: "
                  f"{s['samples_per_s']:>12,.0f} samples/s (comm {s['comm_fraction']:.0%})",
                  flush=True)
    best = max(results, key=results.get)
    print(f"best: {best[0]} x {best[1]} ({results[best]:,.0f} samples/s)")


if __name__ == "__main__":
    main()
