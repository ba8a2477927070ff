"""Feature standardization: streamed train-split moments, applied to the written shards.

The moments are merged block by block (Chan et al.'s parallel update, in float64), so the
input is never held whole. The shards are first written raw, then rescaled in place, because
the mean and standard deviation are known only after the last train row has been seen.
"""

import h5py
import numpy as np

# A feature that never varies keeps std 1: it is only centred, never divided by zero.
_CONSTANT = 0.0


class RunningMoments:
    """Mean and population variance per feature over blocks of rows."""

    def __init__(self, features: int):
        self.count = 0
        self.mean = np.zeros(features, dtype=np.float64)
        self.m2 = np.zeros(features, dtype=np.float64)

    def add(self, X) -> None:
        n = len(X)
        if n == 0:
            return
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        m2 = ((X - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += m2 + delta**2 * (self.count * n / total)
        self.count = total

    def result(self):
        """(mean, std) as float64 arrays; std of a constant feature is 1."""
        std = np.sqrt(self.m2 / max(self.count, 1))
        std[std <= _CONSTANT] = 1.0
        return self.mean.copy(), std


def standardize_shard(path, mean, std, block_rows: int) -> None:
    """Rewrite X of one shard as float32((X - mean) / std), block by block."""
    with h5py.File(path, "r+") as f:
        X = f["X"]
        for start in range(0, X.shape[0], block_rows):
            stop = min(start + block_rows, X.shape[0])
            block = X[start:stop].astype(np.float64)
            X[start:stop] = ((block - mean) / std).astype(np.float32)
