#!/usr/bin/env bash
# Distributed batch prediction on the 16-core machine, one command: rows/s of
# `mpirun -n P hpctrain predict --data` at 1, 2, 4, 8, 16 ranks (one per core), W1 and W2,
# and onnxruntime on one process over the same rows when it is installed (the lent machine
# has no network and no onnxruntime unless its wheels are carried: the column is left out).
#
#   benchmarks/device_predict_study.sh OUT_DIR
set -uo pipefail
out=${1:?usage: device_predict_study.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
source "$here/device_env.sh"
# W1: 4 M rows of 32 features (512 MB); W2: 131,072 rows of 1024 (512 MB)
timeout 900 python3 "$here/predict_throughput.py" --ranks 1,2,4,8,16 --workloads W1,W2 \
    --mb 512 --repeats 3 --mpiexec-args "--bind-to core" --out "$out/predict.md"
