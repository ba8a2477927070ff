"""Receive buffers that live across calls, so no step of an allreduce allocates a big array.

One buffer per dtype and thread, grown to the largest count asked for and handed out as a
view of its head. The memory stays allocated: at most one message-sized buffer per dtype
(doubling needs the whole message, ring one chunk of it). Per thread, so that two threads
reducing different buckets at once never share a receive buffer.
"""

import threading

import numpy as np

_pools = threading.local()


def scratch(dtype, count: int) -> np.ndarray:
    """A writable array of `count` elements of `dtype`, contents undefined, reused later."""
    try:
        pool = _pools.by_dtype
    except AttributeError:  # this thread's first call
        pool = _pools.by_dtype = {}
    buf = pool.get(dtype)
    if buf is None or buf.size < count:
        buf = pool[dtype] = np.empty(count, dtype=dtype)
    return buf if buf.size == count else buf[:count]
