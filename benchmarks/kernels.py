"""One training step (forward + backward + Adam) on one thread: hpctrain vs NumPy vs PyTorch.

Workloads W1 and W2 of docs/WORKLOADS.md, at their local batch. Each implementation runs the
same step on the same batch: loss and gradient of the whole batch, then an Adam update (lr
1e-3). Reported: steps/s and samples/s (median over repeats, after warm-up), the matrix FLOP
rate, and the ratio to PyTorch on the CPU with one thread (when torch is importable). Each
implementation runs in its own process.

    python benchmarks/kernels.py [--workloads W1,W2] [--repeats 5] [--csv FILE]
"""

from hpctrain.runtime import set_threads

# One thread everywhere. NumPy's BLAS, Numba and torch read their pool sizes once, when they
# load, so this comes before any of them is imported (hpctrain.runtime imports only os).
set_threads(1)

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from hpctrain.bench.workloads import WORKLOADS  # noqa: E402

# Seconds each timed repeat runs: enough steps for a stable rate, W2's steps being slow.
SECONDS_PER_REPEAT = {"W1": 0.5, "W2": 2.0}
LR = 1e-3


def make_batch(w, seed=0):
    """Inputs ~ N(0, 1), labels from a random tanh teacher (so the loss means something)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((w.local_batch, w.features)).astype(np.float32)
    teacher = rng.standard_normal((w.features, max(w.classes, 2))) / np.sqrt(w.features)
    scores = np.tanh(X @ teacher)
    y = (scores[:, 0] > 0) if w.classes == 2 else scores.argmax(axis=1)
    return X, y.astype(np.int32)


# ---- implementations: each returns a function that runs one step --------------------------

def hpctrain_step(w, X, y):
    from hpctrain.model import MLP
    from hpctrain.optim import make_optimizer

    model = MLP(w.features, w.hidden, "relu", w.task, w.classes)
    params = model.init_params(0)
    grad = np.empty_like(params)
    opt = make_optimizer("adam", model.n_params, lr=LR)
    scale = 1.0 / X.shape[0]

    def step():
        model.loss_grad(params, X, y, grad)
        opt.step(params, grad, scale, LR)
    return step


def numpy_step(w, X, y):
    """The textbook NumPy version: float32 arrays, a list of layers, Adam in array ops."""
    rng = np.random.default_rng(0)
    sizes, classes = w.layer_sizes, w.classes
    layers = [[(rng.standard_normal((i, o)) * np.sqrt(2 / i)).astype(np.float32),
               np.zeros(o, np.float32)] for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    moments = [[np.zeros_like(p) for p in layer for _ in (0, 1)] for layer in layers]
    onehot = None if classes == 2 else np.eye(classes, dtype=np.float32)[y]
    n = X.shape[0]
    t = [0]

    def loss_grad():
        acts = [X]
        for W, b in layers[:-1]:
            acts.append(np.maximum(acts[-1] @ W + b, 0))
        z = acts[-1] @ layers[-1][0] + layers[-1][1]
        if classes == 2:
            dz = (1 / (1 + np.exp(-z)) - y[:, None]) / n
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            dz = (e / e.sum(axis=1, keepdims=True) - onehot) / n
        grads = []
        for l in range(len(layers) - 1, -1, -1):
            grads.append((acts[l].T @ dz, dz.sum(axis=0)))
            if l:
                dz = (dz @ layers[l][0].T) * (acts[l] > 0)
        return grads[::-1]

    def step():
        t[0] += 1
        bc1, bc2 = 1 - 0.9 ** t[0], 1 - 0.999 ** t[0]
        for layer, grads, mom in zip(layers, loss_grad(), moments, strict=True):
            for k in (0, 1):
                m, v = mom[2 * k], mom[2 * k + 1]
                m *= 0.9
                m += 0.1 * grads[k]
                v *= 0.999
                v += 0.001 * grads[k] ** 2
                layer[k] -= (LR / bc1) * m / (np.sqrt(v / bc2) + 1e-8)
    return step


def torch_step(w, X, y, fused=False):
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    sizes = w.layer_sizes
    modules = []
    for i, o in zip(sizes[:-2], sizes[1:-1], strict=True):
        modules += [torch.nn.Linear(i, o), torch.nn.ReLU()]
    net = torch.nn.Sequential(*modules, torch.nn.Linear(sizes[-2], sizes[-1]))
    opt = torch.optim.Adam(net.parameters(), lr=LR, fused=fused)
    xt = torch.from_numpy(X)
    if w.classes == 2:
        yt = torch.from_numpy(y.astype(np.float32))[:, None]
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        yt = torch.from_numpy(y.astype(np.int64))
        loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(xt), yt).backward()
        opt.step()
    return step


IMPLEMENTATIONS = {
    "hpctrain": hpctrain_step,
    "numpy": numpy_step,
    "torch": torch_step,
    "torch-fused-adam": lambda *a: torch_step(*a, fused=True),
}


def torch_importable() -> bool:
    """Whether torch is installed (looked up, not loaded: the children import it)."""
    return importlib.util.find_spec("torch") is not None


# ---- timing ---------------------------------------------------------------------------------

def steps_per_second(step, seconds, repeats):
    """Median steps/s over repeats; each repeat runs as many steps as fit in `seconds`."""
    for _ in range(3):  # warm-up: compilation, caches, allocator
        step()
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < seconds / 4:
        step()
        calls += 1
    per_repeat = max(1, int(4 * calls))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per_repeat):
            step()
        rates.append(per_repeat / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(name, impl, repeats):
    """Steps/s of one implementation on one workload, in THIS process."""
    w = WORKLOADS[name]
    X, y = make_batch(w)
    step = IMPLEMENTATIONS[impl](w, X, y)
    return steps_per_second(step, SECONDS_PER_REPEAT[name], repeats)


def measure_apart(name, impl, repeats):
    """Each implementation in a fresh process: thread pools, JIT state and allocator of one
    library must not slow another (torch after hpctrain in one process has run 2x slower
    than alone)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", f"{name}:{impl}",
           "--repeats", str(repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["steps_per_s"]


def run(workloads, repeats, only):
    impls = [i for i in IMPLEMENTATIONS if not only or i in only]
    if not torch_importable():
        print("torch is not importable: PyTorch rows left out")
        impls = [i for i in impls if not i.startswith("torch")]
    rows = []
    for name in workloads:
        batch = WORKLOADS[name].local_batch
        flops = WORKLOADS[name].matrix_flops(batch)
        rates = {impl: measure_apart(name, impl, repeats) for impl in impls}
        reference = max((r for k, r in rates.items() if k.startswith("torch")), default=None)
        for impl, rate in rates.items():
            rows.append({"workload": name, "impl": impl, "batch": batch,
                         "steps_per_s": rate, "samples_per_s": rate * batch,
                         "gflop_per_s": rate * flops / 1e9,
                         "vs_best_torch": rate / reference if reference else float("nan")})
    return rows


def print_table(rows):
    header = f"{'workload':8} {'impl':17} {'batch':>5} {'steps/s':>10} {'samples/s':>12} " \
             f"{'GFLOP/s':>8} {'vs torch':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['workload']:8} {r['impl']:17} {r['batch']:5d} {r['steps_per_s']:10.1f} "
              f"{r['samples_per_s']:12.0f} {r['gflop_per_s']:8.1f} {r['vs_best_torch']:8.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="W1,W2", help="comma-separated: W1,W2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated implementations to run")
    parser.add_argument("--csv", metavar="FILE", help="also write the rows as CSV")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # WORKLOAD:IMPL, one measurement
    args = parser.parse_args()
    if args.child:
        name, impl = args.child.split(":")
        print(json.dumps({"steps_per_s": measure(name, impl, args.repeats)}))
        return
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown or args.repeats < 1:
        parser.error(f"unknown workload(s) {unknown}" if unknown else "--repeats must be >= 1")
    only = {s for s in args.only.split(",") if s}
    if only - set(IMPLEMENTATIONS):
        parser.error(f"unknown implementation(s) {sorted(only - set(IMPLEMENTATIONS))}")
    rows = run(workloads, args.repeats, only)
    print_table(rows)
    print("one thread; 'vs torch' is the ratio to the faster PyTorch variant "
          "(default Adam or fused Adam)")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
