"""Synthetic datasets: normal features, labels from a random teacher network.

Rows are generated in fixed blocks of BLOCK_ROWS, block b from its own random stream
default_rng([seed, 1, b]), so row i is the same whatever the shard count, the split
fractions or the size of the other blocks; and memory stays at one block however many rows
are asked for. The teacher is a one-hidden-layer tanh network without biases drawn from
default_rng([seed, 2]): it is an odd function of a symmetric input, so binary labels are
balanced in expectation, and a 64-unit student MLP can learn it (the loss really falls).
"""

import numpy as np

from ..errors import InputError
from .input_errors import check_positive
from .writer import write_dataset

BLOCK_ROWS = 8192
TEACHER_HIDDEN = 32
REGRESSION_NOISE = 0.1
_FEATURE_STREAM, _TEACHER_STREAM = 1, 2


def task_for_classes(classes: int) -> str:
    if classes == 0:
        return "regression"
    if classes == 2:
        return "binary"
    if classes > 2:
        return "multiclass"
    raise InputError(f"--classes must be 0 (regression), 2 (binary) or more, got {classes}")


def teacher_weights(seed: int, features: int, outputs: int):
    """(W1 (D, H), W2 (H, outputs)) float32, scaled to keep activations near unit size."""
    rng = np.random.default_rng([seed, _TEACHER_STREAM])
    w1 = rng.standard_normal((features, TEACHER_HIDDEN)) / np.sqrt(features)
    w2 = rng.standard_normal((TEACHER_HIDDEN, outputs)) / np.sqrt(TEACHER_HIDDEN)
    return w1.astype(np.float32), (2.0 * w2).astype(np.float32)


def synthetic_block(seed, block, rows, features, task, weights):
    """Block `block` of the dataset: (X float32 (rows, D), y) with teacher labels."""
    rng = np.random.default_rng([seed, _FEATURE_STREAM, block])
    X = rng.standard_normal((rows, features), dtype=np.float32)
    logits = np.tanh(X @ weights[0]) @ weights[1]
    if task == "binary":
        y = (logits[:, 0] > 0).astype(np.int32)
    elif task == "multiclass":
        y = logits.argmax(axis=1).astype(np.int32)
    else:
        noise = rng.standard_normal(rows, dtype=np.float32)
        y = (logits[:, 0] + np.float32(REGRESSION_NOISE) * noise).astype(np.float32)
    return X, y


def make_synthetic(out, samples, features, classes, shards, val_fraction=0.0,
                   test_fraction=0.0, seed=0, force=False, progress=None) -> dict:
    """Write a synthetic dataset to `out`; returns its manifest (docs/INTERFACES.md)."""
    check_positive(samples=samples, features=features, shards=shards)
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    task = task_for_classes(classes)
    weights = teacher_weights(seed, features, classes if task == "multiclass" else 1)

    def blocks():
        for block, start in enumerate(range(0, samples, BLOCK_ROWS)):
            rows = min(BLOCK_ROWS, samples - start)
            yield synthetic_block(seed, block, rows, features, task, weights)

    source = {"kind": "synthetic", "seed": seed, "teacher_hidden": TEACHER_HIDDEN,
              "block_rows": BLOCK_ROWS}
    return write_dataset(out, blocks(), rows=samples, features=features, task=task,
                         classes=classes, shards=shards, val_fraction=val_fraction,
                         test_fraction=test_fraction, seed=seed, force=force,
                         extra={"source": source}, progress=progress)

