"""What `--reproducible` costs: its step time against the default's, W1 and W2, side by side.

For each workload and rank count, `mpiexec -n P hpctrain train` runs --repeats times with and
without --reproducible, interleaved (so drifts in the machine hit both), with the same global
batch (weak scaling: the workload's local batch x P), --shuffle global, --allreduce ring and
one thread per rank. The step time is summary.json's `step_time_s` (after warm-up); the ratio
is the medians' ratio. Prints one markdown row per (workload, P) and appends them, with the
command, to --out.

    python benchmarks/reproducible_cost.py [--ranks 1,2] [--workloads W1,W2] [--steps 60]
                                           [--repeats 3] [--out FILE.md] [--mpiexec-args A]
                                           [--micro-batch M]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from table_lines import emit

from hpctrain.bench.workloads import WORKLOADS
from hpctrain.launcher import find_mpiexec


def synth(root, name):
    w = WORKLOADS[name]
    path = os.path.join(root, name)
    subprocess.run([sys.executable, "-m", "hpctrain", "data", "synth", "--out", path,
                    "--samples", str(w.local_batch * 16 * 8), "--features", str(w.features),
                    "--classes", str(w.classes), "--shards", "16", "--val-fraction", "0"],
                   check=True, capture_output=True)
    return path


def step_time(data, name, ranks, steps, reproducible, out, launcher_args, micro=None):
    w = WORKLOADS[name]
    cmd = [find_mpiexec(), *launcher_args, "-n", str(ranks), sys.executable, "-m", "hpctrain",
           "train", "--data", data, "--out", out, "--force", "--hidden", w.hidden_flag,
           "--global-batch", str(w.local_batch * ranks), "--shuffle", "global",
           "--steps", str(steps), "--allreduce", "ring", "--threads", "1",
           "--checkpoint-every-s", "0", "--log-every", str(steps)]
    if reproducible:
        cmd += ["--reproducible"] + (["--micro-batch", str(micro)] if micro else [])
    subprocess.run(cmd, check=True, capture_output=True, timeout=1800)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)["step_time_s"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--mpiexec-args", default="", help="e.g. '--bind-to core'")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="--reproducible's --micro-batch (default: train's)")
    args = parser.parse_args()
    emit(args.out, f"`python benchmarks/reproducible_cost.py {' '.join(sys.argv[1:])}`\n\n"
         "| workload | ranks | global batch | default step (ms) | --reproducible step (ms) "
         "| ratio |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for name in args.workloads.split(","):
            data = synth(root, name)
            for ranks in map(int, args.ranks.split(",")):
                times = {False: [], True: []}
                for _ in range(args.repeats):
                    for mode in (False, True):
                        times[mode].append(step_time(data, name, ranks, args.steps, mode,
                                                     os.path.join(root, "run"),
                                                     args.mpiexec_args.split(),
                                                     args.micro_batch))
                plain, exact = (statistics.median(times[m]) for m in (False, True))
                emit(args.out, f"| {name} | {ranks} | {WORKLOADS[name].local_batch * ranks} | "
                               f"{plain * 1e3:.2f} | {exact * 1e3:.2f} | {exact / plain:.2f}x |")
    emit(args.out, "")


if __name__ == "__main__":
    main()
