"""What a user sees while training: progress lines, the bar, the help text. Real processes,
real mpiexec, a real pseudo-terminal for the bar."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading

import pytest
from helpers import REPO, check, child_env, run_cli, run_mpi
from train_util import make_data, metrics


@pytest.fixture(scope="module")
def with_val(tmp_path_factory):
    # 480 training rows: 15 steps per epoch at a global batch of 32
    return make_data(tmp_path_factory.mktemp("progress") / "d", samples=640, val=0.25)


TINY = ["--hidden", "8", "--global-batch", "32", "--allreduce", "ring"]


def test_plain_progress_lines_show_elapsed_time_and_eta(with_val, tmp_path):
    proc = check(run_mpi(2, ["train", "--data", with_val, "--out", tmp_path / "r", *TINY,
                             "--epochs", "2", "--log-every", "5"], timeout=240))
    lines = [line for line in proc.stdout.splitlines() if " step " in line]
    assert len(lines) == 6, proc.stdout
    for line in lines:
        assert re.search(r"elapsed \d+:\d\d:\d\d  eta (\d+:\d\d:\d\d|\?)$", line), line
    assert lines[-1].endswith("eta 0:00:00"), lines[-1]
    assert re.search(r"eta \d+:\d\d:\d\d$", lines[1]), lines[1]  # a rate by the 2nd line
    assert proc.stdout.count("val loss") == 2, proc.stdout


def test_the_bar_on_a_terminal_keeps_the_validation_lines(with_val, tmp_path):
    """stderr on a pseudo-terminal: tqdm's bar; the per-epoch validation lines still show."""
    leader, follower = pty.openpty()
    # a terminal of 24 x 100 (a fresh pty is 0 x 0, where tqdm draws nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    seen = []
    reader = threading.Thread(target=drain, args=(leader, seen), daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hpctrain", "train", "--data", with_val,
             "--out", tmp_path / "r", *TINY, "--epochs", "2", "--log-every", "5"],
            stdout=subprocess.PIPE, stderr=follower, text=True, timeout=240, env=child_env())
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    bar = b"".join(seen).decode(errors="replace")
    assert proc.returncode == 0, (proc.stdout, bar)
    assert "step/s" in bar or "s/step" in bar, bar  # the bar was drawn, not plain lines
    assert " step " not in proc.stdout, proc.stdout
    assert proc.stdout.count("val loss") == 2, proc.stdout


def drain(fd, into):
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other end closed
            return
        if not chunk:
            return
        into.append(chunk)


def test_samples_per_s_leaves_out_validation(with_val, tmp_path):
    """A 2 s validation after step 15 (HPCTRAIN_FAULT=slowval) must not show as a drop in the
    samples/s of steps 16-20: 160 samples in 2 s would be at most 80 samples/s."""
    run = tmp_path / "r"
    proc = check(run_mpi(2, ["train", "--data", with_val, "--out", run, *TINY, "--epochs", "2",
                             "--log-every", "5"], timeout=240,
                         env=child_env(HPCTRAIN_FAULT="slowval@0:15")))
    logged = [r for r in metrics(run) if "samples_per_s" in r]
    assert [r["step"] for r in logged] == [5, 10, 15, 20, 25, 30], proc.stdout
    slowest = min(r["samples_per_s"] for r in logged)
    assert slowest > 800, logged


def test_help_marks_required_options_and_shows_choices():
    train = check(run_cli(["train", "--help"])).stdout
    for option in ("--data", "--out"):
        assert re.search(rf"{option} PATH\s+\S[^\n]*(\n\s{{10,}}[^\n]*)*required", train), train
    evaluate = check(run_cli(["evaluate", "--help"])).stdout
    assert "--split [train|val|test]" in evaluate, evaluate
    assert re.search(r"--data PATH\s+.*\[required\]", evaluate), evaluate


def test_data_folders_are_ignored_by_git():
    proc = subprocess.run(["git", "-C", REPO, "check-ignore", "-q", "data/w1/manifest.json"])
    assert proc.returncode == 0, "data/ is not in .gitignore"


def test_a_cold_kernel_cache_is_announced_once(tmp_path):
    """An empty Numba cache: rank 0 says it compiles (once, of 2 ranks); the second run,
    with the kernels cached, says nothing."""
    data = make_data(tmp_path / "d", samples=200)
    env = child_env(NUMBA_CACHE_DIR=tmp_path / "numba-cache")
    args = ["train", "--data", data, "--hidden", "4", "--steps", "2", "--allreduce", "ring"]
    cold = check(run_mpi(2, [*args, "--out", tmp_path / "cold"], env=env, timeout=400))
    assert cold.stderr.count("compiling kernels (first run only") == 1, cold.stderr
    warm = check(run_mpi(2, [*args, "--out", tmp_path / "warm"], env=env, timeout=400))
    assert "compiling" not in warm.stderr, warm.stderr
