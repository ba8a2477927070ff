"""End-to-end samples/s: hpctrain vs PyTorch DDP (gloo, one thread per rank), same ranks.

For each workload of ../shared/WORKLOADS.md (weak scaling: the local batch of the table) and
each rank count, this runs `hpctrain train` once per allreduce algorithm and the DDP peer
under the same launcher, then prints one table with the ratios. Run it from the repository:

    python benchmarks/train.py --ranks 1,2,4,8,16 --algorithms ring,shm \
        --launcher "mpirun --bind-to core" --csv results.csv

Throughput is global samples per second after warm-up (hpctrain: summary.json's
samples_per_s, the first step excluded; DDP: median of repeats after 3 warm-up steps).
"""

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from hpctrain.bench.scaling import WORKLOADS  # noqa: E402


def launch(launcher, ranks, cmd, timeout):
    full = [*shlex.split(launcher), "-n", str(ranks), *cmd]
    proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-3000:])
        raise RuntimeError(f"failed: {' '.join(full)}")
    return proc.stdout


def make_dataset(folder, w, ranks_max):
    from hpctrain.data.synth import make_synthetic

    path = os.path.join(folder, "data")
    rows = w.local_batch * ranks_max * 4
    make_synthetic(path, samples=rows, features=w.features, classes=w.classes,
                   shards=ranks_max, seed=0, force=True)
    return path


def hpctrain_rate(a, w, data, ranks, algorithm, folder):
    run = os.path.join(folder, f"run-{ranks}-{algorithm}")
    cmd = [sys.executable, "-m", "hpctrain", "train", "--data", data, "--out", run, "--force",
           "--hidden", w.hidden, "--batch-size", str(w.local_batch), "--steps",
           str(a.steps), "--log-every", str(a.steps), "--allreduce", algorithm,
           "--epochs", "1000"]
    launch(a.launcher, ranks, cmd, a.timeout)
    with open(os.path.join(run, "summary.json")) as f:
        s = json.load(f)
    return s["samples_per_s"], s["comm_fraction"]


def ddp_rate(a, w, ranks):
    cmd = [sys.executable, os.path.join(HERE, "ddp_worker.py"), "--features", str(w.features),
           "--hidden", w.hidden, "--classes", str(w.classes), "--local-batch",
           str(w.local_batch), "--steps", str(a.steps)]
    out = launch(a.launcher, ranks, cmd, a.timeout)
    return json.loads(out.strip().splitlines()[-1])["samples_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="W1,W2")
    p.add_argument("--ranks", default="1,2")
    p.add_argument("--algorithms", default="ring")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--launcher", default="mpiexec")
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--no-torch", action="store_true", help="Skip the PyTorch DDP peer.")
    p.add_argument("--csv")
    a = p.parse_args()
    try:
        import torch  # noqa: F401
        have_torch = not a.no_torch
    except ImportError:
        have_torch = False
        print("torch is not installed: the DDP column is left out")
    ranks = [int(r) for r in a.ranks.split(",")]
    rows = []
    for name in a.workloads.split(","):
        w = WORKLOADS[name]
        with tempfile.TemporaryDirectory() as folder:
            data = make_dataset(folder, w, max(ranks))
            for p_ in ranks:
                ddp = ddp_rate(a, w, p_) if have_torch else None
                for algorithm in a.algorithms.split(","):
                    rate, frac = hpctrain_rate(a, w, data, p_, algorithm, folder)
                    rows.append({"workload": name, "ranks": p_, "algorithm": algorithm,
                                 "hpctrain_samples_per_s": rate, "comm_fraction": frac,
                                 "ddp_samples_per_s": ddp,
                                 "ratio_vs_ddp": rate / ddp if ddp else None})
                    print_row(rows[-1])
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def print_row(r):
    ddp = f"{r['ddp_samples_per_s']:>12,.0f}" if r["ddp_samples_per_s"] else f"{'-':>12}"
    ratio = f"{r['ratio_vs_ddp']:>6.2f}x" if r["ratio_vs_ddp"] else f"{'-':>7}"
    print(f"{r['workload']:>3} {r['ranks']:>3} ranks {r['algorithm']:>7}: hpctrain "
          f"{r['hpctrain_samples_per_s']:>12,.0f} samples/s (comm {r['comm_fraction']:.0%})"
          f"   DDP {ddp}   {ratio}", flush=True)


if __name__ == "__main__":
    main()
