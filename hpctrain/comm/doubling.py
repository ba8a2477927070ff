"""Recursive-doubling allreduce: log2(p) exchanges of the whole buffer, latency-optimal.

Registered as `doubling`; `tree`, its first name, still works wherever a name is typed.

With p a power of two, in round k every rank swaps its partial sum with the rank whose
(new) rank differs in bit k and adds: after log2(p) rounds everyone holds the total.
Other p use MPICH's fold/unfold: with pof2 the largest power of two <= p and rem = p - pof2,
the first 2*rem ranks pair up; the even one of each pair sends its buffer to the odd one and
sits out, the remaining pof2 ranks run the doubling, and the odd ones hand the result back.

Cost per rank: log2(pof2) messages of n elements (+2 with fold/unfold), n*log2(p) elements
sent: few steps, many bytes, so it wins for small messages.

Identical bits on every rank: in each round both partners compute
(sum of the lower-ranked group) + (sum of the higher-ranked group), always in that operand
order, so every rank evaluates the same expression tree on the same values. (Relying on
a + b == b + a would already hold for numbers, but not for the payload of two NaNs.)
"""

from .exact import new_status, recv, sendrecv
from .local_add import sum_into
from .scratch import scratch

FOLD_TAG, DOUBLING_TAG, UNFOLD_TAG = 21, 22, 23


def doubling_allreduce(comm, buf) -> None:
    p, n = comm.Get_size(), buf.size
    if p == 1 or n == 0:
        return
    rank = comm.Get_rank()
    pof2 = 1 << (p.bit_length() - 1)
    rem = p - pof2
    incoming = scratch(buf.dtype, n)
    status = new_status()  # every message's length is checked: a rank may pass another n

    newrank = _fold(comm, buf, incoming, rank, rem, status)
    if newrank >= 0:
        _doubling(comm, buf, incoming, newrank, pof2, rem, status)
    _unfold(comm, buf, rank, rem, status)


def _fold(comm, buf, incoming, rank: int, rem: int, status) -> int:
    """Pair up the first 2*rem ranks; return this rank's place in the doubling, -1 if none."""
    if rank >= 2 * rem:
        return rank - rem
    if rank % 2 == 0:
        comm.Send(buf, rank + 1, FOLD_TAG)
        return -1
    recv(comm, incoming, rank - 1, FOLD_TAG, status)
    sum_into(buf, incoming, buf)  # the lower rank's values first
    return rank // 2


def _real_rank(newrank: int, rem: int) -> int:
    return newrank * 2 + 1 if newrank < rem else newrank + rem


def _doubling(comm, buf, incoming, newrank: int, pof2: int, rem: int, status) -> None:
    mask = 1
    while mask < pof2:
        partner = newrank ^ mask
        peer = _real_rank(partner, rem)
        sendrecv(comm, buf, peer, incoming, peer, DOUBLING_TAG, status)
        if partner < newrank:
            sum_into(buf, incoming, buf)
        else:
            sum_into(buf, buf, incoming)
        mask <<= 1


def _unfold(comm, buf, rank: int, rem: int, status) -> None:
    """The odd rank of each folded pair returns the total to its even partner."""
    if rank >= 2 * rem:
        return
    if rank % 2:
        comm.Send(buf, rank - 1, UNFOLD_TAG)
    else:
        recv(comm, buf, rank + 1, UNFOLD_TAG, status)
