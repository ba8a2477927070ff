"""A rank's training rows held on the GPU, and batches gathered from them there.

Gathering a W2 batch (8192 rows of 1024 features, 34 MB) on one host core took 13 of a
21 ms step, and then the batch still had to cross the bus. When the rows fit, they go over
once; per step only the row indices do (8 bytes a row), into pinned memory and on to the GPU,
and one kernel (kernels/cuda_epilogue.py `gather_rows`) builds the flat batch (inputs, then
labels as float32: kernels/cuda_staging.py's layout) the network's plans read.
"""

import numpy as np

from .cuda_epilogue import element_config, gather_rows
from .cuda_launch import Copy, PreparedLaunch
from .cuda_shim import cuda, simulated


def fits(nbytes: int, share: float) -> bool:
    """True if nbytes is at most `share` of the current GPU's free memory."""
    if simulated():
        return True
    free, _total = cuda.current_context().get_memory_info()
    return nbytes <= share * free


class HeldRows:
    """X (n, features) and y (n,) on the GPU; `gather(index)` -> a flat device batch."""

    def __init__(self, X, y, network, stream):
        self.stream, self.network = stream, network
        self.features = X.shape[1]
        self.X = cuda.to_device(np.ascontiguousarray(X, dtype=np.float32), stream=stream)
        self.labels = cuda.to_device(np.asarray(y, dtype=np.float32), stream=stream)
        self.capacity = 0
        self.by_rows = {}        # rows -> (pinned index view, Copy, batch view, launch)

    def _fit(self, rows: int) -> None:
        if rows > self.capacity:
            self.capacity = max(rows, self.capacity + self.capacity // 2)
            self.index_host = cuda.pinned_array(self.capacity, dtype=np.int64)
            self.index = cuda.device_array(self.capacity, dtype=np.int64)
            self.batch = cuda.device_array(self.capacity * (self.features + 1),
                                           dtype=np.float32)
            self.by_rows.clear()

    def _prepared(self, rows: int):
        self._fit(rows)
        found = self.by_rows.get(rows)
        if found is None:
            if len(self.by_rows) >= 8:     # batch sizes come and go (an epoch's last batch)
                self.by_rows.clear()
            host, index = self.index_host[:rows], self.index[:rows]
            batch = self.batch[:rows * (self.features + 1)]
            config = element_config(rows * (self.features + 1), self.network.sm_count,
                                    self.stream)
            found = (host, Copy(index, host, "to_device", self.stream), batch,
                     PreparedLaunch(gather_rows, *config, (self.X, self.labels, index, batch,
                                                           rows, self.features)))
            self.by_rows[rows] = found
        return found

    def gather(self, index) -> object:
        """The batch of these row indices, gathered on the GPU (queued on the stream).
        The same device array for every batch of one size, so the plans stay cached."""
        index = np.asarray(index)
        if len(index) and (index.min() < 0 or index.max() >= self.X.shape[0]):
            raise IndexError(f"row index outside the {self.X.shape[0]} held rows")
        host, copy, batch, launch = self._prepared(len(index))
        host[...] = index
        copy()
        launch()
        return batch
