#!/usr/bin/env bash
# The shm and auto study (issue 8), in one run so that every number shares the machine state:
# for each rank count, the aggregate copy bandwidth (benchmarks/membw.py, which gives shm's
# memory-traffic bound), then native, ring, tree, shm and auto (`hpctrain bench allreduce`),
# then shm once more without its pipeline (HPCTRAIN_SHM_CHUNK_BYTES=0). At the end the targets
# table (benchmarks/shm_targets.py). docs/PERFORMANCE.md, "shm and auto", explains it all.
#
#   benchmarks/shm.sh OUT_DIR
#
# Written for Open MPI's mpirun on one node of 16 cores or more, run as root (hence
# OMPI_ALLOW_RUN_AS_ROOT), with hpctrain installed (offline: add --no-deps --no-build-isolation):
# python3 -m pip install -e .
# Overridable: PYTHON (python3), MPIRUN (mpirun), RANKS ("8 16"), SIZES, REPEATS (20).
# Takes about a minute per rank count.
set -euo pipefail

out=${1:?usage: benchmarks/shm.sh OUT_DIR}
PYTHON=${PYTHON:-python3}
MPIRUN=${MPIRUN:-mpirun}
RANKS=${RANKS:-"8 16"}
SIZES=${SIZES:-64K,1M,4M,16M,64M}
REPEATS=${REPEATS:-20}
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$out"
if [ -e "$out/allreduce.csv" ]; then
    echo "benchmarks/shm.sh: $out/allreduce.csv exists; give a new directory" >&2
    exit 2
fi

# Open MPI refuses to start as root without these. auto measures afresh: a private cache.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export XDG_CACHE_HOME="$out/cache"

for p in $RANKS; do
    "$MPIRUN" --bind-to core -n "$p" "$PYTHON" "$here/membw.py" --sizes "$SIZES" \
        --csv "$out/membw.csv" | tee "$out/membw-p$p.txt"
    "$MPIRUN" --bind-to core -n "$p" "$PYTHON" -m hpctrain bench allreduce \
        --sizes "$SIZES" --algorithms native,ring,tree,shm,auto --repeats "$REPEATS" \
        --warmup 5 --dtype float32 --csv "$out/allreduce.csv" | tee "$out/allreduce-p$p.txt"
    # One node: the ranks inherit the launcher's environment, the variable included.
    HPCTRAIN_SHM_CHUNK_BYTES=0 "$MPIRUN" --bind-to core -n "$p" \
        "$PYTHON" -m hpctrain bench allreduce --sizes "$SIZES" --algorithms shm \
        --repeats "$REPEATS" --warmup 5 --dtype float32 --csv "$out/allreduce-nopipe.csv" \
        | tee "$out/allreduce-nopipe-p$p.txt"
done
cp "$XDG_CACHE_HOME/hpctrain/allreduce-auto.json" "$out/" 2>/dev/null || true
"$PYTHON" "$here/shm_targets.py" "$out" | tee "$out/targets.md"
