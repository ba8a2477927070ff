"""Load a checkpoint and predict: the model `hpctrain train` (or `fit(...).save`) wrote.

    python examples/inference.py RUN/checkpoints/step-00000100.h5 rows.npy

Without arguments it trains a small model first, saves it, and loads it back. A model trained
on a standardized dataset standardizes raw rows itself (the checkpoint records the moments).
"""

import os
import sys
import tempfile

import numpy as np

import hpctrain

if len(sys.argv) >= 2:
    path = sys.argv[1]
    rows = np.load(sys.argv[2]) if len(sys.argv) > 2 else None
else:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 5)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int32)
    path = os.path.join(tempfile.mkdtemp(prefix="hpctrain-example-"), "model.h5")
    hpctrain.fit(X, y, hidden=(8,), epochs=20, batch_size=32, lr=1e-2).save(path)
    rows = X[:8]

model = hpctrain.load(path)
print(f"loaded {path}: {model.model}")
if rows is not None:
    print("probabilities:", np.round(model.predict_proba(rows), 3).tolist())
    print("predictions:  ", model.predict(rows).tolist())
