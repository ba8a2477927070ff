"""Training steps on one GPU: hpctrain's CUDA kernels vs PyTorch on CUDA vs hpctrain on one
CPU core, plus the FLOP rate of the matrix kernels against a large PyTorch matmul.

Workloads of shared/WORKLOADS.md: W1 (32-64-1, batch 256), W2 (1024-1024-1024-10, batch
512) and W2 with a local batch of 8192. One step = forward + backward over the batch + Adam
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
Throughput = samples/s, median of --repeats timed runs after a warm-up.

    python benchmarks/gpu.py [--csv FILE] [--repeats 5] [--quick] [--no-cpu]
"""

import os

# One thread for the CPU comparison, fixed before NumPy, Numba or torch load.
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

LR = 1e-3
POOL = 4          # distinct batches cycled through, so no step reuses the last one's copy

# name: (features, hidden, classes (2 = binary), batch, timed steps per repeat)
WORKLOADS = {
    "W1": (32, (64,), 2, 256, 400),
    "W2": (1024, (1024, 1024), 10, 512, 60),
    "W2-8192": (1024, (1024, 1024), 10, 8192, 10),
}


def make_batches(features, classes, batch, count=POOL, seed=0):
    """Inputs ~ N(0, 1), labels from a random tanh teacher (the loss means something)."""
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal((features, max(classes, 2))) / np.sqrt(features)
    out = []
    for _ in range(count):
        X = rng.standard_normal((batch, features)).astype(np.float32)
        scores = np.tanh(X @ teacher)
        y = (scores[:, 0] > 0) if classes == 2 else scores.argmax(axis=1)
        out.append((X, y.astype(np.int32)))
    return out


def matrix_flops(features, hidden, classes, batch):
    """FLOPs of one step's matrix products: forward, dW, and dA below the top layer."""
    sizes = (features, *hidden, 1 if classes == 2 else classes)
    products = [i * o for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    return 2 * batch * (2 * sum(products) + sum(products[1:]))


def timed(run_steps, steps, repeats, warmup):
    """Median seconds per step of `run_steps(steps)` over repeats, after a warm-up."""
    run_steps(warmup)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_steps(steps)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def model_for(features, hidden, classes):
    from hpctrain.model import MLP

    task = "binary" if classes == 2 else "multiclass"
    return MLP(features, hidden, "relu", task, classes)


# ---- implementations: each returns run_steps(k) -------------------------------------------

def hpctrain_cuda(workload, batches, mode, **tuning):
    from hpctrain.cuda_engine import CudaEngine

    model = model_for(*workload[:3])
    engine = CudaEngine(model, "adam", lr=LR, **tuning)
    engine.load(model.init_params(0))
    if mode == "pinned":
        grad = engine.host_buffer(model.n_params + 4)[:model.n_params]
    else:
        grad = np.zeros(model.n_params, np.float32)
    scale = 1.0 / workload[3]
    state = {"i": 0}

    def run_steps(k):
        for _ in range(k):
            X, y = batches[state["i"] % POOL]
            state["i"] += 1
            if mode in ("host", "pinned"):
                engine.loss_grad(X, y, grad)
                engine.step(grad, scale, LR)
            else:
                # the next batch's copy overlaps this step
                engine.prefetch(*batches[state["i"] % POOL])
                engine.loss_grad(X, y, None)
                engine.step(None, scale, LR)
    return run_steps


def hpctrain_cpu(workload, batches):
    from hpctrain.engine import CpuEngine
    from hpctrain.optim import make_optimizer

    model = model_for(*workload[:3])
    engine = CpuEngine(model, make_optimizer("adam", model.n_params, lr=LR),
                       model.init_params(0))
    grad = np.zeros(model.n_params, np.float32)
    scale = 1.0 / workload[3]
    state = {"i": 0}

    def run_steps(k):
        for _ in range(k):
            X, y = batches[state["i"] % POOL]
            state["i"] += 1
            engine.loss_grad(X, y, grad)
            engine.step(grad, scale, LR)
    return run_steps


def torch_setup():
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return torch


def torch_cuda(workload, batches, sync_each_step=True):
    torch = torch_setup()
    features, hidden, classes, _, _ = workload
    sizes = (features, *hidden, 1 if classes == 2 else classes)
    layers = []
    for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(i, o))
        if l < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    if classes == 2:
        loss_fn = torch.nn.BCEWithLogitsLoss()
        host = [(torch.from_numpy(X).pin_memory(),
                 torch.from_numpy(y.astype(np.float32)[:, None]).pin_memory())
                for X, y in batches]
    else:
        loss_fn = torch.nn.CrossEntropyLoss()
        host = [(torch.from_numpy(X).pin_memory(), torch.from_numpy(y.astype(np.int64))
                 .pin_memory()) for X, y in batches]
    state = {"i": 0}

    def run_steps(k):
        for _ in range(k):
            X, y = host[state["i"] % POOL]
            state["i"] += 1
            X, y = X.cuda(non_blocking=True), y.cuda(non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X), y)
            loss.backward()
            opt.step()
            if sync_each_step:
                loss.item()
        torch.cuda.synchronize()
    return run_steps


# ---- matrix kernels: achieved TFLOP/s ----------------------------------------------------------

def time_on_gpu(launch, repeats=20):
    """Median milliseconds of one launch, by CUDA events on the default stream."""
    from hpctrain.kernels.cuda_shim import cuda

    launch()
    cuda.synchronize()
    times = []
    for _ in range(5):
        start, stop = cuda.event(), cuda.event()
        start.record()
        for _ in range(repeats):
            launch()
        stop.record()
        stop.synchronize()
        times.append(cuda.event_elapsed_time(start, stop) / repeats)
    return statistics.median(times)


def matrix_rates(shapes_to_try):
    """(kernel, shape, M, N, K, TFLOP/s) of each matrix kernel on W2's layer products at
    batch 8192, next to PyTorch on the same products and its 8192^3 ceiling."""
    from hpctrain.kernels import RELU
    from hpctrain.kernels.cuda_dense import DenseLauncher
    from hpctrain.kernels.cuda_shim import cuda

    rng = np.random.default_rng(1)
    batch, width = 8192, 1024
    A = cuda.to_device(rng.standard_normal((batch, width)).astype(np.float32))
    W = cuda.to_device((rng.standard_normal((width, width)) / 32).astype(np.float32))
    b = cuda.to_device(np.zeros(width, np.float32))
    out = cuda.device_array((batch, width), np.float32)
    back = cuda.device_array((batch, width), np.float32)
    dW = cuda.device_array((width, width), np.float32)
    db = cuda.device_array(width, np.float32)
    flops = 2.0 * batch * width * width
    stream = cuda.default_stream()
    rows = []
    sm = cuda.get_current_device().MULTIPROCESSOR_COUNT
    for name, shape in shapes_to_try:
        d = DenseLauncher(stream, sm, shape)
        launches = (("forward  Z = act(A W + b)", d.prepare_forward(A, W, b, out, RELU)),
                    ("weight   dW += A^T dZ, db", d.prepare_weight_grads(A, out, dW, db)),
                    ("input    dA = dZ W^T * act'", d.prepare_input_grads(out, W, A, back,
                                                                          RELU)))
        for kernel, launch in launches:
            rows.append(("hpctrain", kernel, name, flops / time_on_gpu(launch) / 1e9))
    try:
        torch = torch_setup()
    except ImportError:
        return rows
    tA = torch.randn(batch, width, device="cuda")
    tW = torch.randn(width, width, device="cuda")
    for kernel, fn in (("forward  Z = act(A W + b)", lambda: torch.mm(tA, tW)),
                       ("weight   dW += A^T dZ, db", lambda: torch.mm(tA.t(), tA)),
                       ("input    dA = dZ W^T * act'", lambda: torch.mm(tA, tW.t()))):
        rows.append(("torch", kernel, "cuBLAS", flops / torch_ms(torch, fn) / 1e9))
    big = torch.randn(8192, 8192, device="cuda")
    ceiling = 2.0 * 8192 ** 3 / torch_ms(torch, lambda: torch.mm(big, big)) / 1e9
    rows.append(("torch", "ceiling  8192^3 matmul", "cuBLAS", ceiling))
    return rows


def torch_ms(torch, fn, repeats=20):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / repeats)
    return statistics.median(times)


def launch_overhead():
    """Microseconds per call from Python: empty kernels and small copies."""
    from hpctrain.kernels.cuda_launch import Copy, PreparedLaunch
    from hpctrain.kernels.cuda_shim import cuda

    @cuda.jit
    def one(a):
        pass

    @cuda.jit
    def eight(a, b, c, d, e, f, g, h):
        pass

    x = cuda.device_array(16, np.float32)
    small = cuda.device_array(2177, np.float32)
    pinned = cuda.pinned_array(2177, np.float32)
    stream = cuda.stream()
    args8 = (x, x, x, x, 1, 2.0, np.float32(3), 4)
    calls = [("launch, 1 array", lambda: one[1, 32, stream](x)),
             ("launch, 4 arrays + 4 scalars", lambda: eight[1, 32, stream](*args8)),
             ("copy 8.7 KB pinned -> device", lambda: small.copy_to_device(pinned,
                                                                           stream=stream)),
             ("copy 8.7 KB device -> pinned", lambda: small.copy_to_host(pinned,
                                                                         stream=stream)),
             ("stream.synchronize (idle)", stream.synchronize)]
    prepared = PreparedLaunch(eight, 1, 32, stream, args8)
    to_device = Copy(small, pinned, "to_device", stream)
    to_host = Copy(small, pinned, "to_host", stream)
    calls += [(f"PreparedLaunch, 4+4 args (fast={prepared.fast})", prepared),
              (f"PreparedLaunch, 4+4 args, new scalars (fast={prepared.fast})",
               lambda: prepared(5, 6.0, np.float32(7), 8)),
              (f"Copy 8.7 KB pinned -> device (fast={to_device.fast})", to_device),
              (f"Copy 8.7 KB device -> pinned (fast={to_host.fast})", to_host)]
    out = []
    for name, call in calls:
        call()
        stream.synchronize()
        n = 2000
        start = time.perf_counter()
        for _ in range(n):
            call()
        stream.synchronize()
        out.append((name, (time.perf_counter() - start) / n * 1e6))
    return out


# ---- the study -------------------------------------------------------------------------------

def step_rows(args):
    rows = []
    for name, workload in WORKLOADS.items():
        features, hidden, classes, batch, steps = workload
        if args.quick:
            steps = max(2, steps // 10)
        batches = make_batches(features, classes, batch)
        flops = matrix_flops(features, hidden, classes, batch)
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
