"""Aggregate copy bandwidth of P processes at once: the memory-traffic bound of `shm`.

    mpiexec -n P python benchmarks/membw.py [--sizes 64K,1M,4M,16M,64M] [--seconds 0.2]
                                            [--csv FILE]

Every rank copies a private SIZE-byte buffer into another (np.copyto, i.e. memcpy), all ranks
at the same time, between barriers. Aggregate bandwidth counts bytes read plus bytes written
(2 * SIZE per copy, the way docs/PERFORMANCE.md quotes one core's copy bandwidth) over the
slowest rank's time. Run it with the same P, binding and sizes as `hpctrain bench allreduce`.

From it, the bound on shm's bus bandwidth for one node of p ranks (docs/PERFORMANCE.md,
"shm and auto"): an in-place shm allreduce of n bytes moves (5p + 1) n bytes in all (copy in
2n, reduce n + n/p, copy out 2n, per rank), so it takes at least (5p + 1) n / BW and

    busbw_bound = 2(p-1)/p * BW / (5p + 1)          (in place)
    busbw_bound = 2(p-1)/p * BW / (3p + 1)          (gradient in the window: no copy in)
"""

from hpctrain.runtime import set_threads

# One thread per rank: the copies are the measurement, and NumPy's BLAS reads its pool size
# once, when it loads, so this comes before NumPy is imported (hpctrain.runtime imports only os).
set_threads(1)

import argparse  # noqa: E402
import csv  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
MAX_REPS = 10_000


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper())
    if match is None or int(match.group(1)) == 0:
        raise SystemExit(f"membw: --sizes: cannot read {text!r} (use e.g. 4096, 64K, 1M)")
    return int(match.group(1)) * UNITS[match.group(2)]


def slowest(comm, seconds: float) -> float:
    mine, result = np.array([seconds]), np.empty(1)
    comm.Allreduce(mine, result, op=MPI.MAX)
    return float(result[0])


def copy_time(comm, src, dst, reps: int) -> float:
    """Seconds per copy, the slowest rank's, all ranks copying at the same time."""
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(reps):
        np.copyto(dst, src)
    return slowest(comm, time.perf_counter() - start) / reps


def measure(comm, size: int, seconds: float) -> float:
    """Aggregate bytes read + written per second for one buffer size."""
    src = np.full(size, 1, dtype=np.uint8)
    dst = np.zeros(size, dtype=np.uint8)  # touched: no page faults in the timed copies
    first = copy_time(comm, src, dst, 2)
    reps = int(np.clip(seconds / max(first, 1e-9), 3, MAX_REPS))  # agreed: same on all ranks
    per_copy = copy_time(comm, src, dst, reps)
    return comm.Get_size() * 2 * size / per_copy


def shm_bounds(p: int, bandwidth: float) -> tuple[float, float]:
    """(in place, no copy in) upper bounds on shm's busbw from the aggregate bandwidth."""
    bus = 2 * (p - 1) / p
    return bus * bandwidth / (5 * p + 1), bus * bandwidth / (3 * p + 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64K,1M,4M,16M,64M")
    parser.add_argument("--seconds", type=float, default=0.2, help="timed seconds per size")
    parser.add_argument("--csv", help="append one row per size to this CSV file")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    p, rows = comm.Get_size(), []
    for size in (parse_size(s) for s in args.sizes.split(",")):
        bandwidth = measure(comm, size, args.seconds)
        in_place, no_copy_in = shm_bounds(p, bandwidth)
        rows.append({"ranks": p, "size_bytes": size, "aggregate_GBps": bandwidth / 1e9,
                     "per_rank_GBps": bandwidth / p / 1e9,
                     "shm_bound_busbw_GBps": in_place / 1e9,
                     "shm_bound_no_copy_in_busbw_GBps": no_copy_in / 1e9})
    if comm.Get_rank() != 0:
        return
    print(f"# memcpy, {p} processes at once, bytes read + written; shm busbw bounds for p={p}")
    print(f"#{'size(B)':>11} {'aggregate':>10} {'per rank':>9} {'shm bound':>10} "
          f"{'no copy-in':>10}   (GB/s)")
    for row in rows:
        print(f"{row['size_bytes']:>12} {row['aggregate_GBps']:>10.2f} "
              f"{row['per_rank_GBps']:>9.2f} {row['shm_bound_busbw_GBps']:>10.2f} "
              f"{row['shm_bound_no_copy_in_busbw_GBps']:>10.2f}")
    if args.csv:
        new = not os.path.exists(args.csv) or os.path.getsize(args.csv) == 0
        with open(args.csv, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
