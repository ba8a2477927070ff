"""Training steps on one GPU: hpctrain's CUDA kernels vs PyTorch on CUDA vs hpctrain on one
CPU core, plus the FLOP rate of the matrix kernels against a large PyTorch matmul.

Workloads of docs/WORKLOADS.md: W1 and W2 at their local batch (256, 512), and W2 with a
local batch of 8192. One step = forward + backward over the batch + Adam
(lr 1e-3), float32, batches copied in from pinned host memory every step, the loss read
back every step (the training loop logs it). PyTorch: eager mode, TF32 off, Adam's
default (foreach) implementation, `loss.item()` each step; also shown without that sync.
hpctrain CUDA runs in three modes:
  host    the multi-rank path: the gradient sum comes to a host buffer (for the allreduce)
          and goes back before the update;
  pinned  the same with that host buffer from engine.host_buffer (pinned memory, copied
          to and from directly);
  device  one GPU: the gradient stays on the device; the next batch is prefetched, its
          copy overlapping the current step.
Throughput = samples/s, median of --repeats timed runs after a warm-up. Then the matrix
kernels' TFLOP/s and the cost of a launch from Python (benchmarks/gpu_kernels.py).

    python benchmarks/gpu.py [--csv FILE] [--repeats 5] [--quick] [--no-cpu]
"""

from hpctrain.runtime import set_threads

# One thread for the CPU comparison (unless the caller chose otherwise). NumPy's BLAS, Numba
# and torch read their pool sizes once, when they load, so this comes before any of them is
# imported (hpctrain.runtime imports only os).
set_threads(1, overwrite=False)

import argparse  # noqa: E402
import csv  # noqa: E402
import itertools  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402
from gpu_kernels import launch_overhead, matrix_rates, timed, torch_mlp, torch_setup  # noqa: E402

from hpctrain.bench.workloads import WORKLOADS  # noqa: E402

LR = 1e-3
POOL = 4          # distinct batches cycled through, so no step reuses the last one's copy

# name: (workload, timed steps per repeat): fewer steps where one step is slow
CASES = {
    "W1": (WORKLOADS["W1"], 400),
    "W2": (WORKLOADS["W2"], 60),
    "W2-8192": (replace(WORKLOADS["W2"], local_batch=8192), 10),
}


def make_batches(w, count=POOL, seed=0):
    """Inputs ~ N(0, 1), labels from a random tanh teacher (the loss means something)."""
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal((w.features, max(w.classes, 2))) / np.sqrt(w.features)
    out = []
    for _ in range(count):
        X = rng.standard_normal((w.local_batch, w.features)).astype(np.float32)
        scores = np.tanh(X @ teacher)
        y = (scores[:, 0] > 0) if w.classes == 2 else scores.argmax(axis=1)
        out.append((X, y.astype(np.int32)))
    return out


def model_for(w):
    from hpctrain.model import MLP

    return MLP(w.features, w.hidden, "relu", w.task, w.classes)


def over_the_pool(batches, step):
    """run_steps(k): k calls of step(batch, next_batch), walking the pool of batches in turn."""
    position = itertools.count()

    def run_steps(k):
        for _ in range(k):
            i = next(position)
            step(batches[i % len(batches)], batches[(i + 1) % len(batches)])
    return run_steps


# ---- implementations: each returns run_steps(k) -------------------------------------------

def hpctrain_cuda(w, batches, mode, **tuning):
    from hpctrain.cuda_engine import CudaEngine

    model = model_for(w)
    engine = CudaEngine(model, "adam", lr=LR, **tuning)
    engine.load(model.init_params(0))
    if mode == "pinned":
        grad = engine.host_buffer(model.n_params + 4)[:model.n_params]
    else:
        grad = np.zeros(model.n_params, np.float32)
    scale = 1.0 / w.local_batch

    def through_host(batch, _next):
        engine.loss_grad(*batch, grad)
        engine.step(grad, scale, LR)

    def on_device(batch, next_batch):
        engine.prefetch(*next_batch)  # the next batch's copy overlaps this step
        engine.loss_grad(*batch, None)
        engine.step(None, scale, LR)
    return over_the_pool(batches, through_host if mode in ("host", "pinned") else on_device)


def hpctrain_cpu(w, batches):
    from hpctrain.engine import CpuEngine
    from hpctrain.optim import make_optimizer

    model = model_for(w)
    engine = CpuEngine(model, make_optimizer("adam", model.n_params, lr=LR),
                       model.init_params(0))
    grad = np.zeros(model.n_params, np.float32)
    scale = 1.0 / w.local_batch

    def step(batch, _next):
        engine.loss_grad(*batch, grad)
        engine.step(grad, scale, LR)
    return over_the_pool(batches, step)


def torch_cuda(w, batches, sync_each_step=True):
    torch = torch_setup()
    model, opt, loss_fn = torch_mlp(torch, w)
    if w.classes == 2:
        host = [(torch.from_numpy(X).pin_memory(),
                 torch.from_numpy(y.astype(np.float32)[:, None]).pin_memory())
                for X, y in batches]
    else:
        host = [(torch.from_numpy(X).pin_memory(), torch.from_numpy(y.astype(np.int64))
                 .pin_memory()) for X, y in batches]

    def step(batch, _next):
        X, y = (t.cuda(non_blocking=True) for t in batch)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        if sync_each_step:
            loss.item()
    steps = over_the_pool(host, step)

    def run_steps(k):
        steps(k)
        torch.cuda.synchronize()
    return run_steps


# ---- the study -------------------------------------------------------------------------------

def step_rows(args):
    rows = []
    for name, (workload, steps) in CASES.items():
        batch = workload.local_batch
        if args.quick:
            steps = max(2, steps // 10)
        batches = make_batches(workload)
        flops = workload.matrix_flops(batch)
        candidates = [("hpctrain CUDA", "device", lambda w=workload, b=batches:
                       hpctrain_cuda(w, b, "device")),
                      ("hpctrain CUDA", "host", lambda w=workload, b=batches:
                       hpctrain_cuda(w, b, "host")),
                      ("hpctrain CUDA", "pinned", lambda w=workload, b=batches:
                       hpctrain_cuda(w, b, "pinned"))]
        if name == "W1":
            candidates.append(("hpctrain CUDA layered", "device", lambda w=workload, b=batches:
                               hpctrain_cuda(w, b, "device", fused=False)))
            for tile in args.tiles:
                candidates.append((f"hpctrain CUDA tile {tile}", "device",
                                   lambda w=workload, b=batches, t=tile:
                                   hpctrain_cuda(w, b, "device", tile=t)))
        if args.torch:
            candidates += [("torch CUDA eager", "item() each step",
                            lambda w=workload, b=batches: torch_cuda(w, b, True)),
                           ("torch CUDA eager", "no per-step sync",
                            lambda w=workload, b=batches: torch_cuda(w, b, False))]
        if args.cpu:
            cpu_steps = max(2, steps // 20) if batch >= 8192 else max(3, steps // 4)
            candidates.append(("hpctrain CPU 1 core", "host", lambda w=workload, b=batches:
                               hpctrain_cpu(w, b), cpu_steps))
        for entry in candidates:
            impl, mode, make = entry[:3]
            n = entry[3] if len(entry) > 3 else steps
            try:
                seconds = timed(make(), n, args.repeats, warmup=max(2, n // 5))
            except Exception as err:  # report and go on: one missing peer is no reason to stop
                print(f"{name} {impl} ({mode}): failed: {type(err).__name__}: {err}",
                      flush=True)
                continue
            rows.append({"workload": name, "batch": batch, "impl": impl, "mode": mode,
                         "samples_per_s": batch / seconds, "step_ms": seconds * 1e3,
                         "matrix_tflops": flops / seconds / 1e12})
            print(f"{name:8} {impl:26} {mode:18} {batch / seconds:14,.0f} samples/s "
                  f"{seconds * 1e3:9.3f} ms/step", flush=True)
    return rows


def add_ratios(rows):
    torch_rate = {r["workload"]: r["samples_per_s"] for r in rows
                  if r["impl"] == "torch CUDA eager" and r["mode"] == "item() each step"}
    for r in rows:
        base = torch_rate.get(r["workload"])
        r["vs_torch"] = r["samples_per_s"] / base if base else float("nan")


def print_table(rows, rates, launches):
    print("\n| workload | batch | implementation | mode | samples/s | ms/step | matrix TFLOP/s "
          "| vs torch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['workload']} | {r['batch']} | {r['impl']} | {r['mode']} | "
              f"{r['samples_per_s']:,.0f} | {r['step_ms']:.3f} | {r['matrix_tflops']:.2f} | "
              f"{r['vs_torch']:.2f}x |")
    if rates:
        print("\n| who | matrix kernel (8192x1024 @ 1024x1024) | tiles | TFLOP/s |")
        print("| --- | --- | --- | --- |")
        for who, kernel, shape, tflops in rates:
            print(f"| {who} | {kernel} | {shape} | {tflops:.1f} |")
    if launches:
        print("\n| call from Python (numba-cuda) | us |")
        print("| --- | --- |")
        for name, us in launches:
            print(f"| {name} | {us:.1f} |")


def write_csv(path, rows, rates, launches):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "workload", "batch", "impl", "mode", "samples_per_s", "step_ms",
                    "matrix_tflops", "vs_torch"])
        for r in rows:
            w.writerow(["step", r["workload"], r["batch"], r["impl"], r["mode"],
                        f"{r['samples_per_s']:.1f}", f"{r['step_ms']:.4f}",
                        f"{r['matrix_tflops']:.4f}", f"{r['vs_torch']:.4f}"])
        for who, kernel, shape, tflops in rates:
            w.writerow(["matrix", "8192x1024x1024", "", who, f"{kernel} [{shape}]", "", "",
                        f"{tflops:.3f}", ""])
        for name, us in launches:
            w.writerow(["launch", "", "", "numba-cuda", name, "", f"{us / 1e3:.5f}", "", ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="write the results here")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps")
    parser.add_argument("--no-cpu", dest="cpu", action="store_false",
                        help="skip hpctrain on one CPU core")
    parser.add_argument("--no-torch", dest="torch", action="store_false")
    parser.add_argument("--tiles", default="4,16,32",
                        help="W1 fused-kernel samples per block to try besides the default")
    args = parser.parse_args(argv)
    args.tiles = [int(t) for t in args.tiles.split(",") if t]
    if args.torch:
        try:
            torch_setup()
        except ImportError:
            print("torch is not importable: no PyTorch rows")
            args.torch = False
    from hpctrain.cuda_engine import cuda_available

    ok, reason = cuda_available()
    if not ok:
        raise SystemExit(f"benchmarks/gpu.py needs a GPU: {reason}")
    from hpctrain.kernels.cuda_dense import DEEP, LARGE, SMALL, TileShape
    from hpctrain.kernels.cuda_shim import simulated

    launches = [] if simulated() else launch_overhead()
    rows = step_rows(args)
    add_ratios(rows)
    rates = [] if simulated() else matrix_rates(
        [("LARGE 128x128x8, 128 regs", LARGE), ("128x128x8, no cap", TileShape(128, 8, 8)),
         ("DEEP 128x128x16, no cap", DEEP), ("SMALL 64x64x16", SMALL)])
    print_table(rows, rates, launches)
    if args.csv:
        write_csv(args.csv, rows, rates, launches)
        print(f"\nwrote {args.csv}")


if __name__ == "__main__":
    main()
