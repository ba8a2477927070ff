"""Shared pieces of the training tests: datasets on disk, reading runs back."""

import json
import os

import numpy as np


def make_data(path, samples=600, features=7, classes=2, shards=2, val=0.0, test=0.0, seed=3):
    from hpctrain.data.synth import make_synthetic

    make_synthetic(str(path), samples=samples, features=features, classes=classes,
                   shards=shards, val_fraction=val, test_fraction=test, seed=seed)
    return str(path)


def metrics(run) -> list:
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def summary(run) -> dict:
    with open(os.path.join(run, "summary.json")) as f:
        return json.load(f)


def checkpoints(run) -> list:
    folder = os.path.join(run, "checkpoints")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".h5"))


def final_params(run) -> np.ndarray:
    from hpctrain import checkpoint

    return checkpoint.load(checkpoints(run)[-1]).params


def snapshot(folder) -> dict:
    """Every file under a folder with its bytes: to prove nothing was overwritten."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found
