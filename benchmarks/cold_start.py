"""Cold start: time to first step with an empty Numba cache, and with a warm one.

For each rank count: one `mpiexec -n P hpctrain train` with a fresh NUMBA_CACHE_DIR (every
kernel compiles), then the same command again with that cache (kernels load from it); then,
with another fresh cache, `mpiexec -n 2 hpctrain warmup` once (its wall time is reported as
the "warmup" row) and the training after it: a node type's first job after a warm-up.
A first row per rank count times the ranks only starting (imports, MPI_Init): the floor.
Reported per run: summary.json's time_to_first_step_s (the slowest rank's time from the start
of training to the end of its first step, compilation included) and the command's whole wall
time (Python, MPI and import start-up too).

    python benchmarks/cold_start.py --ranks 1,2 [--workload W1] [--out cold_start.md]

The 16-rank figure of issue 19 (10.7 s cold, 2.3 s warm on the 16-core machine):
    python benchmarks/cold_start.py --ranks 16 --mpiexec-args "--bind-to core"
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

from hpctrain.bench.workloads import WORKLOADS
from hpctrain.launcher import find_mpiexec


def make_data(path, work) -> None:
    cmd = [sys.executable, "-m", "hpctrain", "data", "synth", "--out", path, "--samples",
           "4096", "--features", str(work.features), "--classes", str(work.classes),
           "--shards", "2"]
    subprocess.run(cmd, check=True, capture_output=True)


def train_once(ranks, data, run, cache, work, mpiexec_args) -> tuple[float, float]:
    """(time to first step, wall seconds) of one short training."""
    hidden = ",".join(map(str, work.hidden))
    cmd = [find_mpiexec(), *mpiexec_args, "-n", str(ranks), sys.executable, "-m", "hpctrain",
           "train", "--data", data, "--out", run, "--hidden", hidden, "--steps", "3",
           "--batch-size", "64", "--allreduce", "native", "--force"]
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - started
    with open(os.path.join(run, "summary.json")) as f:
        return json.load(f)["time_to_first_step_s"], wall


def warmup_once(cache, mpiexec_args) -> float:
    """Wall seconds of `hpctrain warmup` on two ranks into this cache."""
    cmd = [find_mpiexec(), *mpiexec_args, "-n", "2", sys.executable, "-m", "hpctrain",
           "warmup"]
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def startup_once(ranks, mpiexec_args) -> float:
    """Wall seconds of P ranks that only start: Python, the training modules' imports (Numba,
    NumPy, h5py) and MPI_Init, the floor under any time to the first step."""
    code = "import hpctrain.trainer; from mpi4py import MPI; MPI.COMM_WORLD.Barrier()"
    cmd = [find_mpiexec(), *mpiexec_args, "-n", str(ranks), sys.executable, "-c", code]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--workload", default="W1", choices=sorted(WORKLOADS))
    parser.add_argument("--mpiexec-args", default="")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args()
    work = WORKLOADS[args.workload]
    lines = [f"Command: `python benchmarks/{os.path.basename(__file__)} "
             f"{shlex.join(sys.argv[1:])}`", "",
             "| ranks | cache | time to first step (s) | wall (s) |", "| --- | --- | --- | --- |"]
    out = os.path.abspath(args.out) if args.out else None
    with tempfile.TemporaryDirectory(prefix="hpctrain-cold-") as tmp:
        # Run from outside any checkout: `python -m hpctrain` then starts the installed
        # package (a baseline's, in benchmarks/device_cold_start.sh), not one in the cwd.
        os.chdir(tmp)
        data = os.path.join(tmp, "data")
        make_data(data, work)
        for ranks in map(int, args.ranks.split(",")):
            wall = startup_once(ranks, shlex.split(args.mpiexec_args))
            lines.append(f"| {ranks} | start-up only (imports, MPI_Init) | | {wall:.2f} |")
            cache = os.path.join(tmp, f"numba-cache-{ranks}")  # empty: every kernel compiles
            for label in ("cold", "warm"):
                first, wall = train_once(ranks, data, os.path.join(tmp, f"run-{ranks}"),
                                         cache, work, shlex.split(args.mpiexec_args))
                lines.append(f"| {ranks} | {label} | {first:.2f} | {wall:.2f} |")
                print(lines[-1], flush=True)
            cache = os.path.join(tmp, f"numba-warmup-{ranks}")
            wall = warmup_once(cache, shlex.split(args.mpiexec_args))
            lines.append(f"| 2 | `hpctrain warmup` itself | | {wall:.2f} |")
            first, wall = train_once(ranks, data, os.path.join(tmp, f"run-{ranks}"), cache,
                                     work, shlex.split(args.mpiexec_args))
            lines.append(f"| {ranks} | after warmup | {first:.2f} | {wall:.2f} |")
            print(*lines[-2:], sep="\n", flush=True)
    if out:
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
