"""The binding's costs: cuBLAS through hpctrain's CuPy binding (kernels/cuda_blas.py) next to
PyTorch's own cuBLAS calls, on W2's layer product at batch 8192 (8192x1024 @ 1024x1024) at
each precision, and the microseconds one call costs from Python on a tiny product (where the
GPU's work is nothing and the call is everything).

    python benchmarks/gpu_blas_rates.py
"""

import statistics
import time

import numpy as np


def gpu_ms(launch, synchronize, event_pair, repeats=20):
    """Median milliseconds of one launch, by CUDA events around `repeats` launches."""
    launch()
    synchronize()
    times = []
    for _ in range(5):
        start, stop, elapsed = event_pair()
        start()
        for _ in range(repeats):
            launch()
        stop()
        times.append(elapsed() / repeats)
    return statistics.median(times)


def python_us(call, synchronize, repeats=2000):
    """Microseconds of host time per call (queued, not waited for)."""
    call()
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    spent = time.perf_counter() - start
    synchronize()
    return spent / repeats * 1e6


def ours(precision, m, k, n):
    from hpctrain.kernels import cuda_epilogue as epi
    from hpctrain.kernels.cuda_blas import Blas
    from hpctrain.kernels.cuda_shim import cuda

    stream = cuda.stream()
    blas = Blas(stream, precision)
    rng = np.random.default_rng(0)

    def operand(shape):
        a = cuda.to_device(rng.standard_normal(shape).astype(np.float32))
        if precision != "bf16":
            return a
        low = cuda.device_array(a.size, dtype=np.uint16)
        epi.to_bf16[64, 256](a.reshape(a.size).view(np.uint32), low, a.size)
        return low
    A, W = operand((m, k)), operand((k, n))
    C = cuda.device_array((m, n), dtype=np.float32)
    product = blas.row_major(A, (m, k), False, W, (k, n), False, C)

    def launch():
        with blas.stream:
            product()

    def event_pair():
        start, stop = cuda.event(), cuda.event()
        return (lambda: start.record(stream)), (lambda: (stop.record(stream),
                                                         stop.synchronize())), \
            (lambda: cuda.event_elapsed_time(start, stop))
    return launch, stream.synchronize, event_pair


def theirs(precision, m, k, n):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    A = torch.randn(m, k, device="cuda", dtype=dtype)
    W = torch.randn(k, n, device="cuda", dtype=dtype)

    def event_pair():
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        return start.record, (lambda: (stop.record(), stop.synchronize())), \
            (lambda: start.elapsed_time(stop))
    return (lambda: torch.mm(A, W)), torch.cuda.synchronize, event_pair


def main():
    big, tiny = (8192, 1024, 1024), (8, 8, 8)
    flops = 2.0 * big[0] * big[1] * big[2]
    print("| who | precision | TFLOP/s (8192x1024 @ 1024x1024) | us per call from Python "
          "(8x8x8) |")
    print("| --- | --- | --- | --- |")
    for precision in ("fp32", "tf32", "bf16"):
        for who, make in (("hpctrain (CuPy cublasGemmEx)", ours), ("torch.mm", theirs)):
            try:
                launch, sync, events = make(precision, *big)
                tflops = flops / gpu_ms(launch, sync, events) / 1e9
                small, sync_small, _ = make(precision, *tiny)
                us = python_us(small, sync_small)
            except Exception as err:  # one missing peer is no reason to stop
                print(f"| {who} | {precision} | failed: {type(err).__name__}: {err} | |")
                continue
            print(f"| {who} | {precision} | {tflops:.1f} | {us:.1f} |", flush=True)


if __name__ == "__main__":
    main()
