#!/usr/bin/env bash
# The CPU study in three parts, each one command (so that a part's numbers share one machine
# state). It needs 16 cores (the rank counts go to 16). Each PART writes under OUT_DIR and
# ends with a short summary on stdout; benchmarks/results/README.md says where it was run.
#
#   benchmarks/device_cpu_study.sh allreduce OUT_DIR   # membw + every allreduce, 2..16 ranks
#   benchmarks/device_cpu_study.sh endtoend OUT_DIR    # one-core kernels; end-to-end samples/s
#                                                      # vs PyTorch DDP, 1..16 ranks
#   benchmarks/device_cpu_study.sh scaling OUT_DIR     # strong and weak scaling, W1 and W2
#
# Written for Open MPI's mpirun, run as root (hence OMPI_ALLOW_RUN_AS_ROOT): one rank per
# core (--bind-to core), one thread per rank.
set -uo pipefail
part=${1:?usage: device_cpu_study.sh allreduce|endtoend|scaling OUT_DIR}
out=${2:?usage: device_cpu_study.sh allreduce|endtoend|scaling OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
source "$here/device_env.sh"

case "$part" in
allreduce)
    RANKS="2 4 8 16" SIZES=4K,16K,64K,256K,1M,4M,8M,16M,64M REPEATS=20 \
        bash "$here/shm.sh" "$out/allreduce"
    python3 -m hpctrain.bench.allreduce_plot "$out/allreduce/allreduce.csv" \
        "$out/allreduce/allreduce-study.png"
    ;;
endtoend)
    python3 "$here/kernels.py" --repeats 5 --csv "$out/kernels.csv" | tee "$out/kernels.txt"
    python3 "$here/ddp_compare.py" --workloads W1,W2 --ranks 1,2,4,8,16 \
        --algorithms shm,ring,native --steps 20 --launcher "mpirun --bind-to core" \
        --csv "$out/ddp_compare.csv" | tee "$out/ddp_compare.txt"
    ;;
scaling)
    for study in "W2 strong" "W1 strong" "W2 weak" "W1 weak"; do
        set -- $study
        hpctrain bench scaling --workload "$1" --mode "$2" --ranks 1,2,4,8,16 \
            --allreduce shm,ring --steps 15 --repeats 1 --mpiexec-args "--bind-to core" \
            --timeout 120 --out "$out/scaling-$1-$2" | tail -n 14
    done
    ;;
*) echo "unknown part $part"; exit 2 ;;
esac
