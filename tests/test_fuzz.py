"""Fuzzing the untrusted inputs: CSVs, manifests, shards, checkpoints and --config TOML files
(tests/fuzz/driver.py).

Each kind runs in its own child, under fixed seeds and one fresh one (printed on failure, so a
case found once can be replayed): every case must end in success or an InputError naming the
file, with nothing half-written, and none may hang (the child's per-case watchdog and this
test's timeout both bound it).
"""

import os
import subprocess
import sys

import pytest
from helpers import child_env

DRIVER = os.path.join(os.path.dirname(__file__), "fuzz", "driver.py")
CASES = 400
SEEDS = [0, 1, int.from_bytes(os.urandom(3), "little")]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["csv", "manifest", "shard", "checkpoint", "toml"])
def test_untrusted_input_ends_in_success_or_one_named_error(kind, seed, tmp_path):
    proc = subprocess.run([sys.executable, DRIVER, kind, str(tmp_path), str(seed), str(CASES)],
                          capture_output=True, text=True, timeout=240, env=child_env())
    assert proc.returncode == 0, (
        f"{kind} seed {seed} (replay: python {DRIVER} {kind} DIR {seed} {CASES}):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    assert proc.stdout.strip().startswith(f"ok {kind}: {CASES} cases")
