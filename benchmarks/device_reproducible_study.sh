#!/usr/bin/env bash
# --reproducible on the 16-core machine, one command: the bits at 1, 8 and 16 ranks under Open
# MPI with every allreduce (tests/mpi/reproducible_fit.py: one line per algorithm, all must be
# equal), then its cost against the default, W1 and W2 at 1, 4 and 16 ranks (weak scaling).
#
#   benchmarks/device_reproducible_study.sh OUT_DIR
set -uo pipefail
out=${1:?usage: device_reproducible_study.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
source "$here/device_env.sh"
for p in 1 8 16; do
    mpirun --bind-to core -n "$p" python3 "$here/../tests/mpi/reproducible_fit.py" on \
        ring,doubling,shm,native,auto > "$out/bits-$p.txt" 2>&1
done
echo "distinct (sha256, loss, accuracy) over P = 1, 8, 16 and all algorithms:"
cat "$out"/bits-*.txt | cut -d' ' -f2- | sort | uniq -c
timeout 420 python3 "$here/reproducible_cost.py" --ranks 1,4,16 --workloads W2,W1 --steps 30 \
    --repeats 3 --mpiexec-args "--bind-to core" --out "$out/cost.md"
# W2 at 16 ranks with one micro-batch per rank (8192 / 16 = 512 rows) instead of two
timeout 90 python3 "$here/reproducible_cost.py" --ranks 16 --workloads W2 --steps 30 \
    --repeats 2 --micro-batch 512 --mpiexec-args "--bind-to core" --out "$out/cost.md"
