#!/usr/bin/env bash
# Cold start on the 16-core machine, before and after a change, in one device call: the
# cold-start table (benchmarks/cold_start.py) for a baseline tree (BASELINE_DIR, a checkout
# of the commit to compare against, installed in its turn) and for this one, side by side on
# the same machine; then the ranks x threads layouts of `hpctrain bench scaling --layouts`.
#
#   benchmarks/device_cold_start.sh OUT_DIR [BASELINE_DIR]
#
# BASELINE_DIR travels with the device call as an ignored folder named in its carry, e.g.
# `echo /.old/ >> .git/info/exclude; mkdir .old; git archive e7a026a | tar -x -C .old`.
set -uo pipefail
out=${1:?usage: device_cold_start.sh OUT_DIR [BASELINE_DIR]}
baseline=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
source "$here/device_env.sh"
part() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@" 2>&1 \
    | grep -v "^\s*$" | tee "$out/$name.txt" | tail -n 40; }
install() { python3 -m pip install -q --no-deps --no-build-isolation -e "$1" >/dev/null 2>&1 \
    || { echo "install of $1 failed"; exit 1; }; }

if [ -n "$baseline" ]; then
    install "$baseline"
    part cold-baseline 240 python3 "$here/cold_start.py" --ranks 16 \
        --mpiexec-args "--bind-to core" --out "$out/cold_start-baseline.md"
    install "$here/.."
fi
part cold 300 python3 "$here/cold_start.py" --ranks 1,16 --mpiexec-args "--bind-to core" \
    --out "$out/cold_start.md"
lay=$(mktemp -d)
part layouts 150 env HPCTRAIN_MPIEXEC=mpirun python3 -m hpctrain bench scaling --mode strong \
    --layouts 16 --workload W2 --global-batch 8192 --allreduce auto --steps 15 \
    --repeats 1 --timeout 60 --out "$lay/study"
for ext in csv md png; do cp "$lay/study/scaling.$ext" "$out/layouts.$ext" 2>/dev/null; done
rm -rf "$lay"
