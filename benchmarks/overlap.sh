#!/usr/bin/env bash
# End-to-end W2 weak scaling at 8 and 16 ranks with and without overlapping the allreduce
# with the backward pass (--bucket-mb), for shm, ring and auto. Needs 16 cores; written for
# Open MPI's mpirun (--bind-to core), run as root (hence OMPI_ALLOW_RUN_AS_ROOT).
#
#   benchmarks/overlap.sh OUT_DIR
set -euo pipefail
out=${1:?usage: benchmarks/overlap.sh OUT_DIR}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PYTHONUNBUFFERED=1
for bucket in 0 2; do
    hpctrain bench scaling --mode weak --workload W2 --ranks 1,8,16 \
        --allreduce shm,ring,auto --steps 15 --repeats 1 --mpiexec-args "--bind-to core" \
        --train-args "--bucket-mb $bucket" --timeout 120 --out "$out/bucket-$bucket" \
        | tail -n 12
done
