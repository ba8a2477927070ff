#!/usr/bin/env bash
# The GPU study of docs/GPU.md in one command (the lent H200 machine): the CUDA tests on the
# real GPU, then steps at each precision vs PyTorch (both protocols), the CLI end to end vs a
# plain PyTorch loop, and the accuracy of tf32/bf16 against fp32. Each part writes a .txt under
# OUT_DIR and is bounded in time. PARTS picks some (default: all).
#
#   benchmarks/device_gpu_study.sh OUT_DIR [tests] [steps] [cli] [accuracy] [quick]
#
# The digits dataset is made where scikit-learn is (not on the GPU machine) and carried:
#   python -c "import numpy as np; from sklearn.datasets import load_digits as l; d = l(); \
#     np.savez('digits.npz', X=(d.data / 16).astype('float32'), y=d.target.astype('int32'))"
#   hpctrain data import digits.npz --out data/digits --test-fraction 0.25 --seed 0
set -uo pipefail
out=${1:?usage: device_gpu_study.sh OUT_DIR [PARTS...]}
shift
parts=${*:-tests steps cli accuracy}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
source "$here/device_env.sh"
part() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@" 2>&1 \
    | grep -v "^\s*$" | tee "$out/$name.txt" | tail -n 45; }
quick=""; [[ " $parts " == *" quick "* ]] && quick="--quick"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import cupy, numba_cuda; print('cupy', cupy.__version__, 'numba-cuda', \
numba_cuda.__version__)" 2>&1 | tail -1
cd "$here/.."
if [[ " $parts " == *" tests "* ]]; then
    part tests 300 python3 -m pytest -q -p no:cacheprovider -x tests/cuda_sim/products_cases.py \
        tests/cuda_sim/cases.py
    part train-tests 200 env HPCTRAIN_TEST_REAL_GPU=1 python3 -m pytest -q -p no:cacheprovider \
        tests/test_train_cuda.py
fi
[[ " $parts " == *" steps "* ]] && part blas-rates 120 python3 benchmarks/gpu_blas_rates.py
[[ " $parts " == *" steps "* ]] && part steps 420 python3 benchmarks/gpu_precision.py $quick \
    --csv "$out/gpu_precision.csv"
[[ " $parts " == *" cli "* ]] && part cli 300 python3 benchmarks/gpu_cli.py \
    --work /tmp/gpu-cli --csv "$out/gpu_cli.csv"
[[ " $parts " == *" accuracy "* ]] && part accuracy 300 python3 benchmarks/gpu_accuracy.py \
    --digits data/digits --work /tmp/gpu-accuracy --csv "$out/gpu_accuracy.csv"
exit 0
