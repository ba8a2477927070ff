"""Training steps on one GPU at each precision, hpctrain vs PyTorch eager, two protocols.

One step = forward + backward + Adam (lr 1e-3) over one batch, the loss read back every step
(the training loop logs it) on both sides. Precisions: fp32 (TF32 off on both sides), tf32
(hpctrain --precision tf32; torch allow_tf32), bf16 (hpctrain --precision bf16: bf16
products, fp32 weights and Adam state; torch autocast to bf16, fp32 weights and Adam state).
Protocols, the same on both sides:
  copied  each batch copied in from pinned host memory (hpctrain: engine.host_buffer, as
          `hpctrain train` gathers batches when the rows do not fit on the GPU, named one
          step ahead with engine.prefetch, its copy overlapping the step; torch: tensors
          from pin_memory(), .cuda(non_blocking=True));
  on-gpu  the rows are on the GPU already (hpctrain: engine.hold_rows, each batch gathered
          there by index, as `hpctrain train` does when the rows fit; torch: a pool of
          device tensors, nothing gathered).
hpctrain's path is printed per row: the fused one-launch kernel (small models, always fp32),
cuBLAS products ("blas"), or our tile kernels ("tiles", the fp32 path without CuPy).
Samples/s, median of --repeats timed runs after a warm-up.

    python benchmarks/gpu_precision.py [--csv FILE] [--repeats 5] [--quick]
"""

import argparse
import itertools
from dataclasses import replace

import numpy as np
from gpu_kernels import timed, torch_mlp
from table_lines import write_rows

from hpctrain.bench.workloads import WORKLOADS

LR = 1e-3
POOL = 4
PRECISIONS = ("fp32", "tf32", "bf16")
CASES = {"W1": (WORKLOADS["W1"], 400), "W2": (WORKLOADS["W2"], 100),
         "W2-8192": (replace(WORKLOADS["W2"], local_batch=8192), 30)}


def make_rows(w, seed=0):
    """POOL batches of rows ~ N(0, 1), labels from a random tanh teacher, as one array."""
    rng = np.random.default_rng(seed)
    n = POOL * w.local_batch
    X = rng.standard_normal((n, w.features)).astype(np.float32)
    teacher = rng.standard_normal((w.features, max(w.classes, 2))) / np.sqrt(w.features)
    scores = np.tanh(X @ teacher)
    y = (scores[:, 0] > 0) if w.classes == 2 else scores.argmax(axis=1)
    return X, y.astype(np.int32)


def batches_of(w, X, y):
    return [(X[i * w.local_batch:(i + 1) * w.local_batch],
             y[i * w.local_batch:(i + 1) * w.local_batch]) for i in range(POOL)]


def hpctrain_steps(w, X, y, precision, protocol, **tuning):
    """run_steps(k) of hpctrain's CUDA engine, one GPU (the gradient stays there)."""
    from hpctrain.batches import RowIndices
    from hpctrain.cuda_engine import CudaEngine
    from hpctrain.model import MLP

    model = MLP(w.features, w.hidden, "relu", w.task, w.classes)
    engine = CudaEngine(model, "adam", lr=LR, precision=precision, **tuning)
    engine.load(model.init_params(0))
    scale, position = 1.0 / w.local_batch, itertools.count()
    pool = []
    for Xb, yb in batches_of(w, X, y):      # in pinned memory, as torch's pool is
        pinned = engine.host_buffer(Xb.size).reshape(Xb.shape)
        pinned[...] = Xb
        pool.append((pinned, yb))
    if protocol == "on-gpu":
        assert engine.hold_rows(X, y)
        indices = [RowIndices(np.arange(i * w.local_batch, (i + 1) * w.local_batch))
                   for i in range(POOL)]

    def run_steps(k):
        for _ in range(k):
            i = next(position) % POOL
            if protocol == "on-gpu":
                engine.loss_grad(indices[i], None, None)
            else:
                engine.prefetch(*pool[(i + 1) % POOL])
                engine.loss_grad(*pool[i], None)
            engine.step(None, scale, LR)
    net = engine.network
    path = "fused" if net.uses_fused(w.local_batch) else net.products
    return run_steps, path


def torch_steps(w, X, y, precision, protocol):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    model, opt, loss_fn = torch_mlp(torch, w)
    binary = w.classes == 2
    pool = []
    for Xb, yb in batches_of(w, X, y):
        tx = torch.from_numpy(Xb).pin_memory()
        ty = torch.from_numpy(yb.astype(np.float32)[:, None] if binary
                              else yb.astype(np.int64)).pin_memory()
        pool.append((tx.cuda(), ty.cuda()) if protocol == "on-gpu" else (tx, ty))
    position = itertools.count()

    def run_steps(k):
        for _ in range(k):
            Xb, yb = pool[next(position) % POOL]
            if protocol == "copied":
                Xb, yb = Xb.cuda(non_blocking=True), yb.cuda(non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = loss_fn(model(Xb), yb)
            loss.backward()
            opt.step()
            loss.item()
        torch.cuda.synchronize()
    return run_steps, "eager"


def study(args):
    rows = []
    for (name, (w, steps)), protocol in itertools.product(CASES.items(), ("copied", "on-gpu")):
        if args.quick:
            steps = max(3, steps // 10)
        X, y = make_rows(w)
        entries = [("hpctrain", p, hpctrain_steps, {}) for p in PRECISIONS]
        # the other path at fp32: W1 layer by layer (cuBLAS), W2 with our tile kernels
        entries.append(("hpctrain", "fp32", hpctrain_steps,
                        {"fused": False} if name == "W1" else {"products": "tiles"}))
        if args.torch:
            entries += [("torch", p, torch_steps, {}) for p in PRECISIONS]
        for who, precision, make, tuning in entries:
            try:
                run_steps, path = make(w, X, y, precision, protocol, **tuning)
                seconds = timed(run_steps, steps, args.repeats, max(3, steps // 5))
            except Exception as err:  # one failing row is reported, the study goes on
                print(f"{name} {who} {precision} {protocol}: failed: "
                      f"{type(err).__name__}: {err}", flush=True)
                continue
            row = {"workload": name, "batch": w.local_batch, "protocol": protocol,
                   "who": who, "path": path, "precision": precision,
                   "samples_per_s": w.local_batch / seconds, "step_ms": seconds * 1e3}
            rows.append(row)
            print(f"{name:8} {protocol:7} {who:9} {path:6} {precision:5} "
                  f"{row['samples_per_s']:14,.0f} samples/s {row['step_ms']:8.3f} ms",
                  flush=True)
    return rows


def add_ratios(rows):
    """vs torch: against PyTorch at the same workload, protocol and precision."""
    torch_rate = {(r["workload"], r["protocol"], r["precision"]): r["samples_per_s"]
                  for r in rows if r["who"] == "torch"}
    for r in rows:
        base = torch_rate.get((r["workload"], r["protocol"], r["precision"]))
        r["vs_torch"] = r["samples_per_s"] / base if base else float("nan")


def print_table(rows):
    print("\n| workload | batch | protocol | who | path | precision | samples/s | ms/step "
          "| vs torch (same precision) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['workload']} | {r['batch']} | {r['protocol']} | {r['who']} | {r['path']} "
              f"| {r['precision']} | {r['samples_per_s']:,.0f} | {r['step_ms']:.3f} | "
              f"{r['vs_torch']:.2f}x |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps")
    parser.add_argument("--no-torch", dest="torch", action="store_false")
    args = parser.parse_args(argv)
    from hpctrain.cuda_engine import cuda_available

    ok, reason = cuda_available()
    if not ok:
        raise SystemExit(f"benchmarks/gpu_precision.py needs a GPU: {reason}")
    rows = study(args)
    add_ratios(rows)
    print_table(rows)
    if args.csv:
        write_rows(args.csv, rows)
        print(f"\nwrote {args.csv}")


if __name__ == "__main__":
    main()
