"""The built-in default job: make a small synthetic dataset, train on it under mpiexec, test it.

This is what the README's first command runs on a fresh machine.
"""

import os
import subprocess
import sys

import click

from .errors import InputError
from .launcher import find_mpiexec


def run_demo(out: str, ranks: int, samples: int, epochs: int, allreduce: str) -> None:
    from .data.synth import make_synthetic  # NumPy and h5py: after runtime.configure

    if ranks < 1 or samples < 10 or epochs < 1:
        raise InputError("--ranks and --epochs must be positive and --samples at least 10")
    data, run = os.path.join(out, "data"), os.path.join(out, "run")
    click.echo(f"[1/3] synthetic dataset: {samples} rows, 32 features, binary labels "
               f"from a teacher network -> {data}")
    make_synthetic(data, samples=samples, features=32, classes=2, shards=2, val_fraction=0.1,
                   test_fraction=0.1, seed=0, force=True)
    click.echo(f"[2/3] training the seed model (32-64-1, Adam) on {ranks} ranks, "
               f"{allreduce} allreduce -> {run}")
    python = [sys.executable, "-m", "hpctrain"]
    train = [find_mpiexec(), "-n", str(ranks), *python, "train", "--data", data, "--out", run,
             "--epochs", str(epochs), "--allreduce", allreduce, "--log-every", "20", "--force"]
    run_or_fail(train)
    checkpoint = sorted(os.listdir(os.path.join(run, "checkpoints")))[-1]
    click.echo("[3/3] held-out test split:")
    run_or_fail([*python, "evaluate", "--data", data, "--split", "test", "--checkpoint",
                 os.path.join(run, "checkpoints", checkpoint)])
    click.echo(f"run directory: {run} (config.json, metrics.jsonl, summary.json, checkpoints/)")


def run_or_fail(cmd) -> None:
    code = subprocess.call(cmd)
    if code != 0:
        raise SystemExit(code)
