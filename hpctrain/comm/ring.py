"""Ring allreduce: reduce-scatter, then allgather, around a ring of ranks.

The buffer is cut into p chunks (sizes differ by at most one element, so any n works,
also n < p where some chunks are empty). In p-1 reduce-scatter steps each rank sends one
chunk to its right neighbour, receives one from its left into scratch and adds it into its
own copy; afterwards rank r holds the complete sum of chunk r+1. In p-1 allgather steps the
finished chunks travel once more around the ring, received straight into place.

Cost per rank: 2(p-1) messages of n/p elements, 2(p-1)/p*n elements sent: bandwidth-optimal.
Every chunk is summed on exactly one rank and then copied, so all ranks hold identical bits.
"""

import functools

from .exact import new_status, sendrecv
from .local_add import add_into
from .scratch import scratch

REDUCE_TAG, GATHER_TAG = 11, 12


@functools.lru_cache(maxsize=64)  # the same few (n, p) every step: skip O(p) Python per call
def chunk_bounds(n: int, p: int) -> tuple[int, ...]:
    """Start offsets of the p chunks plus n: chunk c is [bounds[c], bounds[c+1])."""
    return tuple((n * c) // p for c in range(p + 1))


def ring_allreduce(comm, buf) -> None:
    p, n = comm.Get_size(), buf.size
    if p == 1 or n == 0:
        return
    rank = comm.Get_rank()
    right, left = (rank + 1) % p, (rank - 1) % p
    bounds = chunk_bounds(n, p)
    incoming = scratch(buf.dtype, -(-n // p))  # the largest chunk
    status = new_status()  # every message's length is checked: a rank may pass another n

    for step in range(p - 1):
        send, recv = (rank - step) % p, (rank - step - 1) % p
        lo, hi = bounds[recv], bounds[recv + 1]
        received = incoming[:hi - lo]
        sendrecv(comm, buf[bounds[send]:bounds[send + 1]], right, received, left,
                 REDUCE_TAG, status)
        add_into(buf[lo:hi], received)

    for step in range(p - 1):
        send, recv = (rank - step + 1) % p, (rank - step) % p
        sendrecv(comm, buf[bounds[send]:bounds[send + 1]], right,
                 buf[bounds[recv]:bounds[recv + 1]], left, GATHER_TAG, status)
