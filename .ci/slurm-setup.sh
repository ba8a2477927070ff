#!/bin/sh
# Install the minimal one-node SLURM that tests/slurm_cluster.py starts (see SLURM.md).
#
# Usage:  .ci/slurm-setup.sh
#
# Installs Debian's slurmctld, slurmd and slurm-client (22.05 on Debian 12; about 8 packages,
# a few seconds). No munge: the test cluster runs with AuthType=auth/none. Nothing is started
# here; the pytest fixture starts and stops the daemons itself.
#
# Exit status: 0 when the SLURM binaries are on PATH afterwards (also when they already were),
# 0 with a note on stderr when installing is impossible here (not root, no apt-get, no network):
# the SLURM tests then skip with a visible reason instead of failing the whole CI run.
set -u

have_slurm() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v sbatch >/dev/null 2>&1
}

if have_slurm; then
    echo "slurm-setup: SLURM already installed ($(slurmd -V))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "slurm-setup: not root, cannot install SLURM; SLURM tests will skip" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "slurm-setup: no apt-get, cannot install SLURM; SLURM tests will skip" >&2
    exit 0
fi

if apt-get update -q >/dev/null \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurmctld slurmd slurm-client >/dev/null; then
    :
else
    echo "slurm-setup: apt-get install failed; SLURM tests will skip" >&2
    exit 0
fi

if have_slurm; then
    echo "slurm-setup: installed $(slurmd -V)"
else
    echo "slurm-setup: packages installed but SLURM binaries not on PATH; tests will skip" >&2
fi
exit 0
