"""The GPU's parts, one at a time, for benchmarks/gpu.py and gpu_precision.py: matrix kernels,
Python's call costs, and what both step studies share (`timed`, `torch_mlp`).

matrix_rates: the TFLOP/s of each hpctrain matrix kernel on W2's layer products at batch 8192,
next to PyTorch (cuBLAS) on the same products and its 8192^3 ceiling. launch_overhead: the
microseconds per kernel launch and small copy from Python (numba-cuda). Both time on the GPU
only; the caller has checked that one is there. torch is optional: without it, no PyTorch rows.
"""

import statistics
import time

import numpy as np


def torch_setup():
    """torch, with TF32 off so that its float32 products are as exact as hpctrain's."""
    import torch  # optional: ImportError tells the caller to leave the PyTorch rows out

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return torch


def torch_mlp(torch, w):
    """PyTorch's twin of hpctrain's MLP for workload w (Linear + ReLU, a linear last layer),
    on the GPU, with Adam (lr 1e-3) and the workload's loss: (model, optimizer, loss_fn)."""
    sizes = w.layer_sizes
    layers = []
    for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(i, o))
        if l < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).cuda()
    loss_fn = torch.nn.BCEWithLogitsLoss() if w.classes == 2 else torch.nn.CrossEntropyLoss()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), loss_fn


def timed(run_steps, steps, repeats, warmup):
    """Median seconds per step of `run_steps(steps)` over repeats, after a warm-up."""
    run_steps(warmup)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_steps(steps)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


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
