"""Which ranks share a node, and state kept per communicator.

A node is a set of ranks that can map the same memory: MPI's COMM_TYPE_SHARED split. The
hierarchical `shm` allreduce reduces inside each node through shared memory and runs `ring`
among one leader per node.

Multi-node behaviour is tested on one machine with pretend nodes: the environment variable
HPCTRAIN_FAKE_NODES splits the ranks of a communicator into consecutive groups, "2x2" = 2 nodes
of 2 ranks, "3,1" (or "3+1") = a node of 3 ranks then a node of 1. A pretend node is still
intersected with the real shared-memory split, so it never spans two real machines.
"""

import os
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .job_settings import job_setting

FAKE_NODES_VAR = "HPCTRAIN_FAKE_NODES"


def fake_node_sizes(size: int) -> list[int] | None:
    """The pretend node sizes of HPCTRAIN_FAKE_NODES (None when unset).

    InputError, marked collective (every rank reads the same variable and fails the same way:
    rank 0 alone reports it), when the value is bad or the sizes do not add up to `size`.
    """
    sizes = job_setting(FAKE_NODES_VAR)
    if sizes is not None and sum(sizes) != size:
        spec = os.environ[FAKE_NODES_VAR].strip()  # quoted as given, like settings.get does
        err = InputError(f"{FAKE_NODES_VAR}={spec!r}: node sizes add up to {sum(sizes)}, "
                         f"but the job has {size} ranks")
        err.collective = True
        raise err
    return sizes


@dataclass
class Topology:
    """The node split of one communicator (built collectively by `split`)."""

    node: object            # Intracomm of my node's ranks, in the parent's rank order
    leaders: object         # Intracomm of node rank 0 of every node (leader order = parent
                            # rank order); None on ranks that are not their node's leader
    node_sizes: tuple       # ranks per node, nodes in leader order

    @property
    def is_leader(self) -> bool:
        return self.leaders is not None

    @property
    def nodes(self) -> int:
        return len(self.node_sizes)

    def close(self) -> None:
        for sub in (self.node, self.leaders):
            if sub is not None:
                sub.Free()
        self.node = self.leaders = None


def split(comm) -> Topology:
    """Split `comm` into nodes (real or pretend) and a communicator of node leaders."""
    from mpi4py import MPI  # here, not at the top: importing the module starts no MPI

    rank = comm.Get_rank()
    sizes = fake_node_sizes(comm.Get_size())
    if sizes is not None:
        color = int(np.searchsorted(np.cumsum(sizes), rank, side="right"))
        pretend = comm.Split(color, rank)
        node = pretend.Split_type(MPI.COMM_TYPE_SHARED, rank)
        pretend.Free()
    else:
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, rank)
    leader = node.Get_rank() == 0
    leaders = comm.Split(0 if leader else MPI.UNDEFINED, rank)
    mine = np.array([node.Get_size() if leader else 0], dtype=np.int64)
    every = np.empty(comm.Get_size(), dtype=np.int64)
    comm.Allgather(mine, every)
    node_sizes = tuple(int(s) for s in every if s > 0)
    return Topology(node, leaders if leader else None, node_sizes)


# --- state cached on a communicator -------------------------------------------------------
# MPI attribute caching ties our objects (sub-communicators, shared windows, auto's choices)
# to the communicator itself: a freed and re-created communicator can never see stale state,
# and freeing the communicator frees what hangs on it.

_KEYVAL = None


def _delete_state(comm, keyval, state):
    # Close in reverse order of creation: shm windows before the node communicator they use.
    for obj in reversed(list(state.values())):
        close = getattr(obj, "close", None)
        if close is not None:
            close()


def comm_state(comm) -> dict:
    """A dict that lives as long as `comm`: per-communicator caches, by module name."""
    global _KEYVAL
    from mpi4py import MPI  # here, not at the top: importing the module starts no MPI

    if _KEYVAL is None:
        _KEYVAL = MPI.Comm.Create_keyval(delete_fn=_delete_state)
    state = comm.Get_attr(_KEYVAL)
    if state is None:
        state = {}
        comm.Set_attr(_KEYVAL, state)
    return state


def cached(key: str, make):
    """A function comm -> comm_state(comm)[key], made by make(comm) on first use.

    The last communicator seen is remembered: an identity test is cheaper than Get_attr on
    every allreduce, and holding the object means its id cannot be reused by another one.
    """
    last = [(None, None)]

    def lookup(comm):
        seen = last[0]  # one read: another thread may replace the pair between two reads
        if comm is seen[0]:
            return seen[1]
        state = comm_state(comm)
        if key not in state:
            state[key] = make(comm)
        last[0] = (comm, state[key])
        return state[key]

    return lookup


# The node split of a communicator, built on first use (collectively) and then cached.
of = cached("topology", split)
