"""The shm and auto targets of issue 8, read off the CSVs of benchmarks/shm.sh.

    python benchmarks/shm_targets.py OUT_DIR

Reads OUT_DIR/allreduce.csv (`hpctrain bench allreduce`), OUT_DIR/allreduce-nopipe.csv (shm
with HPCTRAIN_SHM_CHUNK_BYTES=0, if present) and OUT_DIR/membw.csv (benchmarks/membw.py) and
prints, per rank count and message size, in GB/s of bus bandwidth:

    native, shm, shm without its pipeline, shm / native (target >= 3 for 1-64 MB at 8 and 16
    ranks), shm's memory-traffic bound from membw, shm / bound (target >= 0.5), the best
    single algorithm, auto, auto / best (target >= 0.95)
"""

import csv
import os
import sys


def read(path) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def by_key(rows, value) -> dict:
    """(ranks, size, algorithm) -> busbw (the last row wins, so a rerun replaces)."""
    return {(int(r["ranks"]), int(r["size_bytes"]), r.get("algorithm", "")): float(r[value])
            for r in rows}


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def number(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    bus = by_key(read(os.path.join(out, "allreduce.csv")), "busbw_GBps")
    nopipe = by_key(read(os.path.join(out, "allreduce-nopipe.csv")), "busbw_GBps")
    bound = by_key(read(os.path.join(out, "membw.csv")), "shm_bound_busbw_GBps")
    cases = sorted({(p, s) for p, s, _ in bus})
    print("| ranks | size | native | shm | shm no pipeline | shm/native | bound | shm/bound "
          "| best single | auto | auto/best |")
    print("| --- " * 11 + "|")
    for p, size in cases:
        single = {a: v for (q, s, a), v in bus.items() if (q, s) == (p, size) and a != "auto"}
        best = max(single, key=single.get) if single else None
        shm, native = bus.get((p, size, "shm")), bus.get((p, size, "native"))
        auto, limit = bus.get((p, size, "auto")), bound.get((p, size, ""))
        print(f"| {p} | {size / 2**20:g} MiB | {number(native)} | {number(shm)} | "
              f"{number(nopipe.get((p, size, 'shm')))} | {ratio(shm, native)} | "
              f"{number(limit)} | {ratio(shm, limit)} | "
              f"{best or '-'} {number(single.get(best))} | {number(auto)} | "
              f"{ratio(auto, single.get(best))} |")


if __name__ == "__main__":
    main()
