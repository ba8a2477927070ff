"""Does a lower precision cost accuracy? fp32 vs tf32 vs bf16 runs of `hpctrain train
--device cuda`, each evaluated on its dataset's test split by `hpctrain evaluate`.

Datasets: a W2-like synthetic set (1024 features, 10 classes, made here by `hpctrain data
synth`, 20% held out) and scikit-learn's digits (8x8 images scaled to [0, 1], 25% held out;
`--digits DIR`, an `hpctrain data import` of it, since the GPU machine has no scikit-learn:
benchmarks/device_gpu_study.sh says how it is made). Same seed, data order and initial
weights at every precision, so the difference is the precision's alone. The goal: tf32 and
bf16 within 0.5 accuracy points of fp32.

    python benchmarks/gpu_accuracy.py [--digits DIR] [--csv FILE] [--work DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from table_lines import write_rows

PRECISIONS = ("fp32", "tf32", "bf16")
# dataset: training flags (W2's shape and batch; digits: a small MLP, more epochs)
RUNS = {"w2-synthetic": ["--hidden", "1024,1024", "--batch-size", "512", "--epochs", "8",
                         "--lr", "1e-3"],
        "digits": ["--hidden", "256,256", "--batch-size", "64", "--epochs", "60",
                   "--lr", "1e-3"]}


def hpctrain(*args):
    proc = subprocess.run([sys.executable, "-m", "hpctrain", *args], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"hpctrain {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def accuracy(data, flags, out, precision):
    hpctrain("train", "--data", data, "--out", out, "--device", "cuda", "--precision",
             precision, "--seed", "1", "--optimizer", "adam", "--checkpoint-every-s", "0",
             "--force", *flags)
    result = json.loads(hpctrain("evaluate", "--data", data, "--checkpoint", out, "--split",
                                 "test", "--json").strip().splitlines()[-1])
    return 100.0 * result["accuracy"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", help="the digits dataset (hpctrain data import)")
    parser.add_argument("--csv")
    parser.add_argument("--work")
    args = parser.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="hpctrain-gpu-accuracy-")
    datasets = {"w2-synthetic": os.path.join(work, "w2")}
    if not os.path.exists(os.path.join(datasets["w2-synthetic"], "manifest.json")):
        hpctrain("data", "synth", "--out", datasets["w2-synthetic"], "--samples", "100000",
                 "--features", "1024", "--classes", "10", "--test-fraction", "0.2",
                 "--seed", "3")
    if args.digits:
        datasets["digits"] = args.digits
    rows = []
    for name, data in datasets.items():
        fp32 = None
        for precision in PRECISIONS:
            acc = accuracy(data, RUNS[name], os.path.join(work, f"{name}-{precision}"),
                           precision)
            fp32 = acc if precision == "fp32" else fp32
            rows.append({"dataset": name, "precision": precision, "test_accuracy": acc,
                         "vs_fp32_points": acc - fp32})
            print(f"{name:13} {precision}: test accuracy {acc:.2f}% "
                  f"({acc - fp32:+.2f} points vs fp32)", flush=True)
    print("\n| dataset | precision | test accuracy | vs fp32 (points) |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['dataset']} | {r['precision']} | {r['test_accuracy']:.2f}% | "
              f"{r['vs_fp32_points']:+.2f} |")
    if args.csv:
        write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
