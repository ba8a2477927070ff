"""`hpctrain train --device cuda` end to end against a plain PyTorch loop over the same rows.

The job: 1 M synthetic rows x 64 features, 10 classes (`hpctrain data synth`), an MLP with
hidden layers 256,256, batch 1024, Adam lr 1e-3, 3 epochs, one GPU. hpctrain: the CLI as a
user runs it, at each --precision; its samples/s is summary.json's (the measured steps' busy
time). The PyTorch loop is the one a user would write first: the shards read with h5py into
host memory, a fresh permutation per epoch, each batch gathered with NumPy, pinned, copied to
the GPU, stepped, its loss read (as hpctrain logs it); its samples/s covers the same steps
after the same warm-up share. Both sides also report their wall time, start-up included.

    python benchmarks/gpu_cli.py [--rows 1000000] [--epochs 3] [--csv FILE] [--work DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from table_lines import write_rows

HIDDEN, BATCH, LR, FEATURES, CLASSES = (256, 256), 1024, 1e-3, 64, 10


def run(cmd):
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def hpctrain_run(data, out, epochs, precision):
    wall = run([sys.executable, "-m", "hpctrain", "train", "--data", data, "--out", out,
                "--device", "cuda", "--precision", precision, "--hidden",
                ",".join(map(str, HIDDEN)), "--batch-size", str(BATCH), "--epochs",
                str(epochs), "--optimizer", "adam", "--lr", str(LR), "--log-every", "100",
                "--checkpoint-every-s", "0", "--force"])
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    phases = {k: round(v * 1e6, 1) for k, v in summary["phase_times_mean_s"].items()}
    return summary["samples_per_s"], wall, {**(summary.get("gpu") or {}),
                                             "phase_us": phases}


def read_rows(data):
    import h5py

    with open(os.path.join(data, "manifest.json")) as f:
        manifest = json.load(f)
    X, y = [], []
    for shard in manifest["splits"]["train"]["shards"]:
        with h5py.File(os.path.join(data, shard["file"]), "r") as h5:
            X.append(h5["X"][...])
            y.append(h5["y"][...])
    return np.concatenate(X), np.concatenate(y)


def torch_loop(data, epochs, warmup_steps):
    started = time.perf_counter()
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    X, y = read_rows(data)
    sizes = (FEATURES, *HIDDEN, CLASSES)
    layers = []
    for i, o in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(i, o), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    steps, timed_from = 0, None
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), BATCH):
            if steps == warmup_steps:
                torch.cuda.synchronize()
                timed_from, timed_steps_start = time.perf_counter(), steps
            idx = order[start:start + BATCH]
            Xb = torch.from_numpy(X[idx]).pin_memory().cuda(non_blocking=True)
            yb = torch.from_numpy(y[idx].astype(np.int64)).pin_memory().cuda(non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xb), yb)
            loss.backward()
            opt.step()
            loss.item()
            steps += 1
    torch.cuda.synchronize()
    end = time.perf_counter()
    timed = steps - timed_steps_start
    return timed * BATCH / (end - timed_from), end - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--csv")
    parser.add_argument("--work", help="where the dataset and runs go (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="hpctrain-gpu-cli-")
    data = os.path.join(work, "data")
    if not os.path.exists(os.path.join(data, "manifest.json")):
        run([sys.executable, "-m", "hpctrain", "data", "synth", "--out", data, "--samples",
             str(args.rows), "--features", str(FEATURES), "--classes", str(CLASSES),
             "--shards", "4"])
    rows = []
    steps = args.epochs * -(-args.rows // BATCH)
    for precision in ("fp32", "tf32", "bf16"):
        rate, wall, facts = hpctrain_run(data, os.path.join(work, f"run-{precision}"),
                                         args.epochs, precision)
        rows.append({"who": "hpctrain train", "precision": precision, "samples_per_s": rate,
                     "wall_s": wall, "path": json.dumps(facts)})
        print(f"hpctrain {precision}: {rate:,.0f} samples/s, {wall:.1f} s wall, {facts}",
              flush=True)
    rate, wall = torch_loop(data, args.epochs, warmup_steps=max(10, steps // 20))
    rows.append({"who": "plain PyTorch loop", "precision": "fp32", "samples_per_s": rate,
                 "wall_s": wall, "path": "eager"})
    print(f"torch loop fp32: {rate:,.0f} samples/s, {wall:.1f} s wall", flush=True)
    base = rows[-1]
    print("\n| who | precision | samples/s | wall s | vs plain PyTorch (samples/s, wall) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['who']} | {r['precision']} | {r['samples_per_s']:,.0f} | "
              f"{r['wall_s']:.1f} | {r['samples_per_s'] / base['samples_per_s']:.2f}x, "
              f"{base['wall_s'] / r['wall_s']:.2f}x |")
    if args.csv:
        write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
