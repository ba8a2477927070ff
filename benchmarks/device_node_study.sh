#!/usr/bin/env bash
# Sixteen ranks on one node, the whole study in one command (the 16-core machine, Open MPI,
# one rank per core): the bounds, every allreduce, end to end against PyTorch DDP, what the
# default `auto` costs cold and warm, and the ranks x threads layouts. Each part writes a
# .txt under OUT_DIR and is bounded in time, so one slow part cannot take the others down.
#
#   benchmarks/device_node_study.sh OUT_DIR
set -uo pipefail
out=${1:?usage: device_node_study.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
source "$here/device_env.sh"
run="mpirun --bind-to core -n 16"
part() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@" 2>&1 \
    | grep -v "^\s*$" | tee "$out/$name.txt" | tail -n 40; }

# Compile the kernels once, so no part below measures Numba's first compile.
python3 -m hpctrain data synth --out "$out/tiny" --samples 2000 --features 8 --shards 2 \
    >/dev/null 2>&1
mpirun -n 2 python3 -m hpctrain train --data "$out/tiny" --out "$out/tiny-run" --steps 3 \
    --allreduce auto >/dev/null 2>&1
part membw 60 $run python3 "$here/membw.py" --sizes 64K,1M,8M,64M
part inwindow 60 $run python3 "$here/inwindow_bound.py" --sizes 4K,64K,1M,8M,64M
part allreduce 150 $run python3 -m hpctrain bench allreduce --sizes 4K,64K,1M,8M,64M \
    --algorithms native,shm,shm-window,ring,auto --repeats 10 --warmup 3 \
    --csv "$out/allreduce.csv"
cd "$here"
part endtoend 200 python3 ddp_compare.py --workloads W2,W1 --ranks 16 \
    --algorithms auto,shm,native --steps 20 --launcher "mpirun --bind-to core" \
    --csv "$out/endtoend.csv"
part auto-W1 90 python3 auto_cost.py --ranks 16 --workloads W1 --steps 20,400 \
    --launcher "mpirun --bind-to core"
part auto-W2 90 python3 auto_cost.py --ranks 16 --workloads W2 --steps 20 \
    --launcher "mpirun --bind-to core"
# Every ranks x threads layout of the 16 cores (16x1 ... 1x16), the same global batch: the
# harness's sweep. Its dataset stays outside OUT_DIR; the tables come back as layouts.*.
lay=$(mktemp -d)
part layouts 120 env HPCTRAIN_MPIEXEC=mpirun python3 -m hpctrain bench scaling --mode strong \
    --layouts 16 --workload W2 --global-batch 8192 --allreduce auto --steps 15 --repeats 1 \
    --timeout 60 --mpiexec-args "--bind-to core" --out "$lay/study"
for ext in csv md png; do cp "$lay/study/scaling.$ext" "$out/layouts.$ext" 2>/dev/null; done
rm -rf "$lay"
