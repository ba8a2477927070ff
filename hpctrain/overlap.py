"""Overlap: allreduce the gradient of the last layers while earlier layers' backward runs.

The flat buffer [gradient | count | loss | correct | flag] is cut into fixed buckets from its
end (the backward pass finishes the last layer first). After each layer's backward, every
bucket that lies wholly in finished layers is handed to one communication thread, which
allreduces the buckets in order with the chosen algorithm. The Numba stages release the GIL,
so the thread's MPI calls progress meanwhile; only that thread calls MPI during the step.

The bucket boundaries depend only on the buffer size and --bucket-mb, never on timing, and
each bucket is summed by the same algorithm in the same order: results do not change with
how the computation and the communication happen to interleave.
"""

import queue
import threading

import numpy as np


def bucket_bounds(length: int, bucket_elems: int) -> list:
    """[(start, stop), ...] from the end of the buffer backwards, each <= bucket_elems."""
    bounds, stop = [], length
    while stop > 0:
        start = max(0, stop - bucket_elems)
        bounds.append((start, stop))
        stop = start
    return bounds


class OverlappedStep:
    """One training step's loss, gradient and allreduce, with the two overlapped."""

    def __init__(self, model, comm, allreduce, buf: np.ndarray, bucket_bytes: int):
        self.model, self.comm, self.allreduce, self.buf = model, comm, allreduce, buf
        elems = max(1, bucket_bytes // buf.itemsize)
        self.buckets = bucket_bounds(len(buf), elems)
        self.todo = queue.Queue()
        self.done = queue.Queue()
        self.thread = threading.Thread(target=self._serve, name="hpctrain-allreduce",
                                       daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            index = self.todo.get()
            if index is None:
                return
            start, stop = self.buckets[index]
            try:
                self.allreduce(self.comm, self.buf[start:stop])
                self.done.put(None)
            except BaseException as err:  # handed to the main thread, which raises it
                self.done.put(err)

    def run(self, params, X, y, set_tail, timer) -> None:
        """Loss, backward and allreduce; `set_tail(loss, correct)` fills the slots after the
        gradient. The timer's compute lap covers the backward (with the overlapped buckets),
        the allreduce lap the wait for the buckets still in flight."""
        from .kernels import mlp_stages

        m = self.model
        n_params = m.n_params
        grad = self.buf[:n_params]
        X, y = m._batch(X, y)
        outputs, deltas = m._workspace(X.shape[0])
        layout = (m._offsets, m._fan_in, m._fan_out, m._acts)
        if X.shape[0] == 0:
            grad[:] = 0
            set_tail(0.0, 0)
            ready_from = 0
        else:
            loss, correct = mlp_stages.forward_head(params, X, y, *layout, m._task_code,
                                                    outputs, deltas)
            set_tail(float(loss), int(correct))
            ready_from = n_params
        sent = self._send_ready(0, ready_from)
        for l in range(len(m.layer_shapes) - 1, -1, -1) if X.shape[0] else ():
            mlp_stages.backward_layer(l, params, X, grad, *layout, outputs, deltas)
            sent = self._send_ready(sent, int(m._offsets[l]))
        timer.lap(1)
        for _ in range(len(self.buckets)):
            err = self.done.get()
            if err is not None:
                raise err
        timer.lap(2)

    def _send_ready(self, sent: int, ready_from: int) -> int:
        """Queue every bucket wholly at or above ready_from; returns how many are queued."""
        while sent < len(self.buckets) and self.buckets[sent][0] >= ready_from:
            self.todo.put(sent)
            sent += 1
        return sent

    def close(self):
        self.todo.put(None)
        self.thread.join()
