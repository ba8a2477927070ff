#!/bin/sh
# Install the minimal one-node SLURM that tests/slurm_cluster.py starts (its docstring has
# the recipe).
#
# Usage:  .ci/slurm-setup.sh [--require]
#
# Installs Debian's slurmctld, slurmd and slurm-client (22.05 on Debian 12; about 8 packages,
# a few seconds). No munge: the test cluster runs with AuthType=auth/none. Nothing is started
# here; the pytest fixture starts and stops the daemons itself.
#
# Exit status: 0 when the SLURM binaries are on PATH afterwards (also when they already were).
# When installing is impossible here (not root, no apt-get, no network) it prints why on stderr
# and exits 0, so the SLURM tests skip with a visible reason instead of failing the whole run;
# with --require it exits 1 instead (for CI machines where SLURM must be tested).
set -u

fail() {
    echo "slurm-setup: $1; SLURM tests will skip" >&2
    if [ "${require:-0}" = 1 ]; then exit 1; fi
    exit 0
}
require=0
case "${1:-}" in
    --require) require=1 ;;
    "") ;;
    *) echo "usage: $0 [--require]" >&2; exit 2 ;;
esac

have_slurm() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v sbatch >/dev/null 2>&1
}

if have_slurm; then
    echo "slurm-setup: SLURM already installed ($(slurmd -V))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    fail "not root, cannot install SLURM"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    fail "no apt-get, cannot install SLURM"
fi

if apt-get update -q >/dev/null \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurmctld slurmd slurm-client >/dev/null; then
    :
else
    fail "apt-get install failed"
fi

if ! have_slurm; then
    fail "packages installed but the SLURM binaries are not on PATH"
fi
echo "slurm-setup: installed $(slurmd -V)"
