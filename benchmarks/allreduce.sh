#!/usr/bin/env bash
# The allreduce study (issue 4): ring, tree and MPI's own Allreduce, float32, at 2, 4, 8 and
# 16 ranks on one node, one rank per core. For each rank count: a table on stdout (also kept
# as allreduce-pP.txt), rows appended to allreduce.csv, allreduce-pP.png; at the end
# allreduce-study.png with one panel per rank count. docs/PERFORMANCE.md explains the columns.
# Expect a few minutes in all (each rank count: about 11 sizes x 3 algorithms x 26 calls).
#
#   benchmarks/allreduce.sh OUT_DIR
#
# Written for Open MPI's mpirun on one node of 16 cores or more, run as root (hence
# OMPI_ALLOW_RUN_AS_ROOT), with hpctrain installed (offline: add --no-deps --no-build-isolation):
# python3 -m pip install -e .
# Overridable: PYTHON (python3), MPIRUN (mpirun), RANKS ("2 4 8 16"), SIZES, REPEATS (20).
set -euo pipefail

out=${1:?usage: benchmarks/allreduce.sh OUT_DIR}
PYTHON=${PYTHON:-python3}
MPIRUN=${MPIRUN:-mpirun}
RANKS=${RANKS:-"2 4 8 16"}
# 4 KB..64 MB are the workload sizes (docs/WORKLOADS.md; 8 MB is about W2's gradient);
# the others place the tree/ring crossover.
SIZES=${SIZES:-256,1K,4K,16K,64K,256K,1M,4M,8M,16M,64M}
REPEATS=${REPEATS:-20}

mkdir -p "$out"
if [ -e "$out/allreduce.csv" ]; then
    echo "benchmarks/allreduce.sh: $out/allreduce.csv exists; give a new directory" >&2
    exit 2
fi

# Open MPI refuses to start as root without these.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

for p in $RANKS; do
    "$MPIRUN" --bind-to core -n "$p" "$PYTHON" -m hpctrain bench allreduce \
        --sizes "$SIZES" --algorithms ring,tree,native --repeats "$REPEATS" --warmup 5 \
        --dtype float32 --csv "$out/allreduce.csv" --plot "$out/allreduce-p$p.png" \
        | tee "$out/allreduce-p$p.txt"
done
"$PYTHON" -m hpctrain.bench.allreduce_plot "$out/allreduce.csv" "$out/allreduce-study.png"
echo "wrote $out/allreduce.csv, $out/allreduce-p*.png, $out/allreduce-study.png"
