"""Plain logs hold no terminal escape codes, under any MPI, with colorama installed.

Open MPI connects every rank's stdout to a pty, even when mpirun's own output goes to a file,
so libraries that colour "only on a terminal" think they are on one. Numba does so through
colorama (in the test extra for this reason), whose exit handler then wrote one ESC[0m per
rank into the log. Checked twice: under the test MPI (CI runs it under MPICH and Open MPI),
and for one process whose stdout is a real pty, which is what Open MPI gives a rank.
"""

import os
import select
import subprocess
import sys
import time

import colorama  # noqa: F401  (the library that wrote the resets must be here)
from helpers import check, child_env, run_mpi
from train_util import make_data

ESC = "\x1b"


def train_args(tmp_path, name):
    data = tmp_path / "data"
    if not data.exists():
        make_data(data, samples=200, features=5, val=0.1)
    return ["train", "--data", data, "--out", tmp_path / name, "--epochs", "1",
            "--batch-size", "16", "--allreduce", "ring"]


def test_multi_rank_logs_hold_no_escape_codes(tmp_path):
    proc = check(run_mpi(2, train_args(tmp_path, "mpi"), timeout=240))
    assert "done:" in proc.stdout
    assert ESC not in proc.stdout and ESC not in proc.stderr, repr(proc.stdout[-300:])


def written_to_a_pty(cmd):
    """(what cmd wrote to its stdout, a pty as Open MPI gives a rank; its exit status, stderr)."""
    leader, follower = os.openpty()
    proc = subprocess.Popen(cmd, stdout=follower, stderr=subprocess.PIPE, env=child_env())
    os.close(follower)
    written, deadline = b"", time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # until the child closes its end (EIO on Linux)
            if not select.select([leader], [], [], 1.0)[0]:
                continue
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(leader)
        if time.monotonic() >= deadline:
            proc.kill()
    _, err = proc.communicate(timeout=60)
    return written, proc.returncode, err.decode()


def test_a_rank_whose_stdout_is_a_pty_writes_no_escape_codes(tmp_path):
    cmd = [sys.executable, "-m", "hpctrain", *map(str, train_args(tmp_path, "pty"))]
    written, code, err = written_to_a_pty(cmd)
    assert code == 0, err
    assert b"done:" in written
    assert ESC.encode() not in written, written[-200:]


def test_the_python_api_on_a_pty_writes_no_escape_codes():
    """A script that drives the library (hpctrain.fit, hpctrain.comm), not the CLI."""
    script = ("import numpy as np, hpctrain\n"
              "X = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)\n"
              "m = hpctrain.fit(X, (X[:, 0] > 0).astype(np.int32), hidden=(4,), epochs=1)\n"
              "print('ok', m.evaluate(X, (X[:, 0] > 0).astype(np.int32))['accuracy'] >= 0)\n")
    written, code, err = written_to_a_pty([sys.executable, "-c", script])
    assert code == 0, err
    assert b"ok True" in written
    assert ESC.encode() not in written, written[-200:]
