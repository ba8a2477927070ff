"""What the allreduces' length check costs per message: Sendrecv bare vs checked.

    mpiexec -n 2 python benchmarks/length_check_cost.py [--bytes 1024] [--calls 20000]

Ranks 0 and 1 exchange one message of --bytes per call, three rounds each way, alternating:
`comm.Sendrecv` as is, and `hpctrain.comm.exact.sendrecv` (a status object per call, as ring
makes per allreduce, plus its Get_count). Rank 0 prints µs per call.
"""

import argparse
import time

import numpy as np
from mpi4py import MPI

from hpctrain.comm.exact import new_status, sendrecv


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bytes", type=int, default=1024)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    peer = 1 - comm.Get_rank()
    out = np.ones(args.bytes // 4, dtype=np.float32)
    into = np.empty_like(out)
    for _ in range(3):
        for name in ("bare", "checked"):
            comm.Barrier()
            began = time.perf_counter()
            for _ in range(args.calls):
                if name == "bare":
                    comm.Sendrecv(out, peer, 11, into, peer, 11)
                else:
                    sendrecv(comm, out, peer, into, peer, 11, new_status())
            seconds = (time.perf_counter() - began) / args.calls
            if comm.Get_rank() == 0:
                print(f"{name:8} {seconds * 1e6:.2f} us per Sendrecv of {args.bytes} bytes")


if __name__ == "__main__":
    main()
