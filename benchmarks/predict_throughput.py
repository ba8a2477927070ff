"""Rows/s of `mpiexec -n P hpctrain predict --data` against onnxruntime on one process.

For each workload (W1, W2: docs/WORKLOADS.md) a synthetic dataset of about --mb MB of
features and a checkpoint of the workload's network (initial parameters: the speed does not
depend on their values); then, for each rank count, `predict --data ... --out P.npy` runs
--repeats times. Two figures per run, the medians shown:
  - predict rows/s: what `predict` prints: rows / the time from the kernels loaded (the
    dataset and checkpoint opened and checked) to the renamed output, so reading, the
    kernels and the parallel write: what grows with the rows;
  - wall rows/s: rows / the whole mpiexec command, with Python's and MPI's start-up.
onnxruntime (when importable; the lent 16-core machine has none): the exported ONNX model
(`hpctrain export`) over the same rows, in memory, blocks of 65,536 rows, one process with
one intra-op thread and with all cores: compute only, no reading or writing.

    python benchmarks/predict_throughput.py [--ranks 1,2,4] [--workloads W1,W2] [--mb 256]
                                            [--repeats 3] [--out FILE.md] [--mpiexec-args A]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from table_lines import emit

from hpctrain.bench.workloads import WORKLOADS
from hpctrain.launcher import find_mpiexec

BLOCK = 65536


def prepare(root, name, mb):
    """(dataset, checkpoint, rows) of a workload, about `mb` MB of float32 features."""
    from hpctrain import checkpoint
    from hpctrain.model import MLP

    w = WORKLOADS[name]
    rows = max(1000, int(mb * 2**20 / (4 * w.features)))
    data = os.path.join(root, name)
    subprocess.run([sys.executable, "-m", "hpctrain", "data", "synth", "--out", data,
                    "--samples", str(rows), "--features", str(w.features), "--classes",
                    str(w.classes), "--shards", "16", "--val-fraction", "0"],
                   check=True, capture_output=True)
    model = MLP(w.features, w.hidden, "relu", w.task, w.classes)
    path = os.path.join(root, f"{name}.h5")
    checkpoint.write(path, model, model.init_params(0), {"name": "sgd", "step": 0,
                                                         "buffers": {}})
    return data, path, rows


def distributed(data, ckpt, ranks, out, launcher_args):
    """(predict rows/s, wall rows/s) of one `predict --data` run."""
    cmd = [find_mpiexec(), *launcher_args, "-n", str(ranks), sys.executable, "-m", "hpctrain",
           "predict", "--checkpoint", ckpt, "--data", data, "--split", "train", "--out", out,
           "--force"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    found = re.search(r"wrote (\d+) predictions .* rank\(s\), ([\d,]+) rows/s after",
                      proc.stdout)
    rows = int(found.group(1))
    return float(found.group(2).replace(",", "")), rows / wall


def onnxruntime_rates(data, ckpt, root):
    """{threads label: rows/s} of onnxruntime over the dataset's rows, or {} without it."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {}
    from hpctrain.data import open_dataset
    from hpctrain.export_model import load_exported
    from hpctrain.export_onnx import write_onnx

    model_path = os.path.join(root, "model.onnx")
    write_onnx(load_exported(ckpt), model_path, single_input=True)
    dataset = open_dataset(data)
    X, _ = dataset.read("train", 0, dataset.rows("train"))
    rates = {}
    for label, threads in (("1 thread", 1), ("all cores", 0)):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        session.run(None, {"features": X[:BLOCK]})  # warm-up
        started = time.perf_counter()
        for start in range(0, len(X), BLOCK):
            session.run(None, {"features": X[start:start + BLOCK]})
        rates[label] = len(X) / (time.perf_counter() - started)
    return rates


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", default="1,2,4")
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--mb", type=float, default=256, help="MB of features per workload")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--mpiexec-args", default="", help="e.g. '--bind-to core'")
    args = parser.parse_args()
    emit(args.out, f"`python benchmarks/predict_throughput.py {' '.join(sys.argv[1:])}`\n\n"
         "| workload | rows | ranks | predict rows/s | wall rows/s (with start-up) "
         "| speedup (predict) |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for name in args.workloads.split(","):
            data, ckpt, rows = prepare(root, name, args.mb)
            base = None
            for ranks in map(int, args.ranks.split(",")):
                runs = [distributed(data, ckpt, ranks, os.path.join(root, "p.npy"),
                                    args.mpiexec_args.split()) for _ in range(args.repeats)]
                rate = statistics.median(r[0] for r in runs)
                wall = statistics.median(r[1] for r in runs)
                base = base or rate
                emit(args.out, f"| {name} | {rows:,} | {ranks} | {rate:,.0f} | {wall:,.0f} | "
                               f"{rate / base:.2f}x |")
            for label, rate in onnxruntime_rates(data, ckpt, root).items():
                emit(args.out, f"| {name} | {rows:,} | onnxruntime, 1 process, {label} "
                               f"(compute only) | {rate:,.0f} | | |")
    emit(args.out, "")


if __name__ == "__main__":
    main()
