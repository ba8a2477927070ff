"""End-to-end samples/s: hpctrain vs PyTorch DDP (gloo, one thread per rank), same ranks.

For each workload of docs/WORKLOADS.md (weak scaling: its local batch per rank) and each rank
count, this runs `hpctrain train` once per allreduce algorithm and the DDP peer
(benchmarks/ddp_worker.py) under the same launcher, then prints one row per run with the
ratio. Run it from the repository:

    python benchmarks/ddp_compare.py --ranks 1,2,4,8,16 --algorithms ring,shm \
        --launcher "mpirun --bind-to core" --csv results.csv

Throughput is global samples per second after warm-up (hpctrain: summary.json's
samples_per_s, the first step excluded; DDP: median of repeats after 3 warm-up steps).
hpctrain must be installed (pip install -e .): every rank runs `python -m hpctrain`.
"""

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile

from hpctrain.bench.scaling_plan import dataset_rows
from hpctrain.bench.workloads import WORKLOADS
from hpctrain.launcher import find_mpiexec

HERE = os.path.dirname(os.path.abspath(__file__))


def launch(launcher, ranks, cmd, timeout):
    full = [*shlex.split(launcher), "-n", str(ranks), *cmd]
    proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-3000:])
        raise RuntimeError(f"failed: {' '.join(full)}")
    return proc.stdout


def make_dataset(folder, w, ranks_max):
    from hpctrain.data.synth import make_synthetic  # h5py: only once the study starts

    path = os.path.join(folder, "data")
    make_synthetic(path, samples=dataset_rows("weak", w, ranks_max), features=w.features,
                   classes=w.classes, shards=ranks_max, seed=0, force=True)
    return path


def hpctrain_rate(a, w, data, ranks, algorithm, folder):
    run = os.path.join(folder, f"run-{ranks}-{algorithm}")
    cmd = [sys.executable, "-m", "hpctrain", "train", "--data", data, "--out", run, "--force",
           "--hidden", w.hidden_flag, "--batch-size", str(w.local_batch), "--steps",
           str(a.steps), "--log-every", str(a.steps), "--allreduce", algorithm,
           "--epochs", "1000"]
    launch(a.launcher, ranks, cmd, a.timeout)
    with open(os.path.join(run, "summary.json")) as f:
        s = json.load(f)
    return s["samples_per_s"], s["comm_fraction"], s.get("allreduce_split_s") or {}, \
        (s.get("step_reduction") or {}).get("reduction", algorithm)


def ddp_rate(a, name, ranks):
    cmd = [sys.executable, os.path.join(HERE, "ddp_worker.py"), "--workload", name,
           "--steps", str(a.steps)]
    out = launch(a.launcher, ranks, cmd, a.timeout)
    return json.loads(out.strip().splitlines()[-1])["samples_per_s"]


def torch_wanted(a) -> bool:
    if a.no_torch:
        return False
    try:
        import torch  # noqa: F401  (only whether it is there: the DDP ranks load it)
    except ImportError:
        print("torch is not installed: the DDP column is left out")
        return False
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="W1,W2", help="comma-separated: W1,W2")
    p.add_argument("--ranks", default="1,2")
    p.add_argument("--algorithms", default="ring")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--launcher", help="the launcher command line, before -n P (default: "
                   "hpctrain's mpiexec: $HPCTRAIN_MPIEXEC, beside this Python, else on PATH)")
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--no-torch", action="store_true", help="Skip the PyTorch DDP peer.")
    p.add_argument("--csv")
    a = p.parse_args()
    names = [n for n in a.workloads.split(",") if n]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {unknown}")
    a.launcher = a.launcher or shlex.quote(find_mpiexec())
    have_torch = torch_wanted(a)
    ranks = [int(r) for r in a.ranks.split(",")]
    rows = []
    for name in names:
        w = WORKLOADS[name]
        with tempfile.TemporaryDirectory() as folder:
            data = make_dataset(folder, w, max(ranks))
            for p_ in ranks:
                ddp = ddp_rate(a, name, p_) if have_torch else None
                for algorithm in a.algorithms.split(","):
                    rate, frac, split, used = hpctrain_rate(a, w, data, p_, algorithm,
                                                            folder)
                    rows.append({"workload": name, "ranks": p_, "algorithm": algorithm,
                                 "reduction": used,
                                 "hpctrain_samples_per_s": rate, "comm_fraction": frac,
                                 "wait_ms": 1e3 * (split.get("waiting") or float("nan")),
                                 "move_ms": 1e3 * (split.get("moving") or float("nan")),
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
          f"{r['hpctrain_samples_per_s']:>12,.0f} samples/s (comm {r['comm_fraction']:.0%}: "
          f"wait {r['wait_ms']:.2f} ms, move {r['move_ms']:.2f} ms; {r['reduction']})"
          f"   DDP {ddp}   {ratio}", flush=True)


if __name__ == "__main__":
    main()
