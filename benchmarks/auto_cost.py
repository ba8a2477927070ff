"""Does the default `--allreduce auto` ever cost the job? Cold cache, warm cache, native.

    python benchmarks/auto_cost.py --ranks 16 --workloads W1,W2 --steps 20,400 \
        --launcher "mpirun --bind-to core"

For each workload (weak scaling: its local batch per rank) and each run length, three jobs
under the same launcher: auto with an empty cache (a fresh XDG_CACHE_HOME: it measures while
setting up), auto again (the cache now warm), and native. Prints samples/s (summary.json,
the first step excluded), what auto used and how long choosing took (reported apart, never
counted as training time), and the ratio to native.
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


def one_job(a, w, data, folder, name, algorithm, steps, cache):
    run = os.path.join(folder, f"{name}-{steps}")
    cmd = ["env", f"XDG_CACHE_HOME={cache}", sys.executable, "-m", "hpctrain", "train",
           "--data", data, "--out", run, "--force", "--hidden", w.hidden_flag,
           "--batch-size", str(w.local_batch), "--steps", str(steps),
           "--log-every", str(steps), "--allreduce", algorithm, "--epochs", "1000"]
    launch(a.launcher, a.ranks, cmd, a.timeout)
    with open(os.path.join(run, "summary.json")) as f:
        s = json.load(f)
    return s["samples_per_s"], s.get("step_reduction") or {}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="W1,W2")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--steps", default="20,400")
    p.add_argument("--launcher")
    p.add_argument("--timeout", type=int, default=300)
    a = p.parse_args()
    a.launcher = a.launcher or shlex.quote(find_mpiexec())
    print(f"# {a.ranks} ranks, {a.launcher}: samples/s; auto's pick, source, seconds to choose")
    for name in a.workloads.split(","):
        w = WORKLOADS[name]
        with tempfile.TemporaryDirectory() as folder:
            data = make_dataset(folder, w, a.ranks)
            for steps in map(int, a.steps.split(",")):
                cache = os.path.join(folder, f"cache-{steps}")  # empty: cold
                native, _ = one_job(a, w, data, folder, "native", "native", steps, cache)
                for label in ("cold", "warm"):
                    rate, facts = one_job(a, w, data, folder, label, "auto", steps, cache)
                    print(f"{name} {steps:>4} steps auto {label}: {rate:>12,.0f} samples/s "
                          f"= {rate / native:.2f}x native ({native:,.0f}); picked "
                          f"{facts.get('reduction')} ({facts.get('source')}, "
                          f"{facts.get('choose_s', 0):.2f} s to choose)", flush=True)


if __name__ == "__main__":
    main()
