"""Production faults under real mpiexec: signals, resumes, the run directory's safety.

Every test is bounded in time (subprocess timeouts), so a regression fails instead of hanging.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import check, child_env, mpiexec, own_lines, run_cli, run_mpi
from train_util import checkpoints, make_data, metrics

from hpctrain import checkpoint as ckpt
from hpctrain.errors import EXIT_STOPPED

SLOW_MODEL = ["--hidden", "128,128", "--batch-size", "64", "--allreduce", "ring",
              "--log-every", "20"]


def start_training(ranks, data, run, steps, extra=()):
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "hpctrain", "train",
           "--data", data, "--out", run, "--steps", str(steps), *SLOW_MODEL, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


def wait_for_log(run, proc, timeout=120):
    """Until the run has logged a step (it is past start-up and compiling)."""
    path = os.path.join(run, "metrics.jsonl")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the run logged no step in time")


def stop_with(proc, signals, gap=0.0, timeout=60):
    """Send the signals to mpiexec; (exit status, stdout, stderr, seconds to exit)."""
    sent = time.monotonic()
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(gap)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err, time.monotonic() - sent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data") / "d", samples=3000, features=32)


@pytest.mark.hydra_signals
def test_sigterm_stops_every_rank_at_one_checkpointed_step_and_resume_finishes(data, tmp_path):
    run, steps = str(tmp_path / "run"), 4000
    proc = start_training(3, data, run, steps)
    wait_for_log(run, proc)
    code, out, err, seconds = stop_with(proc, [signal.SIGTERM])
    assert code == EXIT_STOPPED, (out, err)
    assert seconds < 30
    assert err.count("hpctrain: stopped at step") == 1, err      # one line, from rank 0
    stopped = int(err.split("stopped at step ")[1].split()[0])
    assert 0 < stopped < steps
    assert ckpt.load(checkpoints(run)[-1]).step == stopped       # the step it stopped at
    assert metrics(run)[-1]["step"] == stopped                   # and logged

    proc = check(run_mpi(2, ["train", "--out", run, "--resume"], timeout=300))
    assert f"done: {steps} steps" in proc.stdout
    logged = [r["step"] for r in metrics(run) if "loss" in r]
    assert logged == sorted(set(logged)), "a step was logged twice or out of order"
    assert logged[-1] == steps
    assert ckpt.load(checkpoints(run)[-1]).step == steps


@pytest.mark.hydra_signals
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGUSR1])
def test_other_stop_signals_checkpoint_too(data, tmp_path, sig):
    run = str(tmp_path / "run")
    proc = start_training(2, data, run, 100000)
    wait_for_log(run, proc)
    code, out, err, _ = stop_with(proc, [sig])
    assert code == EXIT_STOPPED, (out, err)
    assert f"on {signal.Signals(sig).name}" in err
    assert ckpt.load(checkpoints(run)[-1]).step == metrics(run)[-1]["step"]


def descendants(pid: int) -> list[int]:
    """Every process below pid (mpiexec -> its proxy -> the ranks), from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rank_pids(proc) -> list[int]:
    pids = []
    for pid in descendants(proc.pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"hpctrain" in f.read() and pid != proc.pid:
                pids.append(pid)
    return pids


def test_a_signal_that_reaches_one_rank_stops_all_of_them(data, tmp_path):
    """srun --signal and site tools may signal the tasks themselves, not the launcher, and
    mpiexec does not forward SIGUSR2: the flag still reaches every rank through the step."""
    run = str(tmp_path / "run")
    proc = start_training(3, data, run, 100000)
    wait_for_log(run, proc)
    ranks = [pid for pid in rank_pids(proc) if not descendants(pid)]  # the Python ranks
    assert len(ranks) == 3, ranks
    os.kill(ranks[-1], signal.SIGUSR2)
    code, out, err = proc.wait(timeout=60), *proc.communicate(timeout=60)
    assert code == EXIT_STOPPED, (out, err)
    assert "stopped at step" in err
    assert ckpt.load(checkpoints(run)[-1]).step == metrics(run)[-1]["step"]


@pytest.mark.hydra_signals
def test_more_signals_during_the_checkpoint_do_not_corrupt_it(data, tmp_path):
    """The ranks get more signals while rank 0 writes a large checkpoint (SLURM and srun
    signal the tasks again; mpiexec's own second Ctrl-C force-kills, like kill -9)."""
    run = str(tmp_path / "run")
    proc = start_training(2, data, run, 100000, ["--hidden", "2048,2048"])
    wait_for_log(run, proc)
    ranks = [pid for pid in rank_pids(proc) if not descendants(pid)]
    proc.send_signal(signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) * 3:
        time.sleep(0.05)
        for pid in ranks:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, (out, err)
    found = checkpoints(run)
    assert len(found) == 1 and ckpt.load(found[0]).step > 0      # verifies its checksum
    assert not [f for f in os.listdir(os.path.join(run, "checkpoints"))
                if f.endswith(".tmp")], "a temporary file was left"


def test_resume_without_a_checkpoint_says_so(tmp_path):
    data = make_data(tmp_path / "d")
    proc = check(run_cli(["train", "--data", data, "--out", tmp_path / "run", "--resume",
                          "--epochs", "1", "--allreduce", "ring"]))
    assert "--resume: no checkpoint in" in proc.stderr and "starting at step 0" in proc.stderr
    with open(tmp_path / "run" / "summary.json") as f:
        assert json.load(f)["steps"] > 0


@pytest.mark.hydra_signals  # it ends the first training with SIGTERM to mpiexec
def test_a_second_training_into_a_run_in_use_is_refused(data, tmp_path):
    run = str(tmp_path / "run")
    first = start_training(2, data, run, 100000)
    wait_for_log(run, first)
    second = run_mpi(2, ["train", "--data", data, "--out", run, "--resume", "--steps", "10"],
                     timeout=120)
    assert second.returncode == 2, second.stderr
    line = own_lines(second.stderr)[-1]
    assert "in use by another training" in line and f"pid {first.pid}" not in line
    assert "host " in line and ".hpctrain.lock" in line
    assert first.poll() is None, "the first training was disturbed"
    code, out, err, _ = stop_with(first, [signal.SIGTERM])
    assert code == EXIT_STOPPED, err
    assert not os.path.exists(os.path.join(run, ".hpctrain.lock")), "the lock was not freed"


def test_the_lock_of_a_killed_training_is_taken_over(data, tmp_path):
    run = str(tmp_path / "run")
    proc = start_training(2, data, run, 100000)
    wait_for_log(run, proc)
    for pid in rank_pids(proc):
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.communicate(timeout=60)
    assert os.path.exists(os.path.join(run, ".hpctrain.lock"))
    resumed = check(run_mpi(2, ["train", "--out", run, "--resume", "--steps", "30"],
                            timeout=120))
    assert "taking over the lock" in resumed.stderr and "which is gone" in resumed.stderr


def test_force_deletes_only_what_hpctrain_wrote(tmp_path):
    data = make_data(tmp_path / "d")
    other = tmp_path / "other-tool"
    (other / "checkpoints").mkdir(parents=True)
    (other / "checkpoints" / "x.pt").write_bytes(b"weights")
    (other / "config.json").write_text("{}")
    proc = run_cli(["train", "--data", data, "--out", other, "--force", "--epochs", "1"])
    assert proc.returncode == 2
    assert "hpctrain did not make" in proc.stderr.strip().splitlines()[-1]
    assert (other / "checkpoints" / "x.pt").read_bytes() == b"weights"

    ours = tmp_path / "ours"
    check(run_cli(["train", "--data", data, "--out", ours, "--epochs", "1",
                   "--allreduce", "ring"]))
    (ours / "notes.txt").write_text("mine")
    proc = run_cli(["train", "--data", data, "--out", ours, "--force", "--epochs", "1"])
    assert proc.returncode == 2 and "notes.txt" in proc.stderr
    os.remove(ours / "notes.txt")
    stale = ours / "checkpoints" / ".step-00000009.h5.k2j4_x9q.tmp"
    stale.write_bytes(b"half a checkpoint")
    check(run_cli(["train", "--data", data, "--out", ours, "--force", "--epochs", "1",
                   "--allreduce", "ring"]))
    assert not stale.exists(), "a killed writer's temporary file was left"


def test_old_checkpoints_are_pruned_to_keep_checkpoints(tmp_path):
    data = make_data(tmp_path / "d")
    run = tmp_path / "run"
    check(run_cli(["train", "--data", data, "--out", run, "--steps", "12", "--batch-size", "20",
                   "--checkpoint-every", "2", "--keep-checkpoints", "3", "--allreduce", "ring"]))
    assert [os.path.basename(p) for p in checkpoints(run)] == [
        "step-00000008.h5", "step-00000010.h5", "step-00000012.h5"]


def test_checkpoints_by_time_bound_the_work_a_kill_loses(data, tmp_path):
    run = str(tmp_path / "run")
    proc = start_training(2, data, run, 300, ["--checkpoint-every-s", "0.3",
                                             "--keep-checkpoints", "0", "--hidden", "1024,1024"])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    saved = [ckpt.load(p).step for p in checkpoints(run)]
    assert len(saved) >= 3 and saved[-1] == 300, saved   # some before the end, by time


def limited_file_size(nbytes):
    import resource

    def limit():  # in the child: writes past nbytes fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_full_disk_ends_the_job_in_one_line_and_keeps_the_last_checkpoint(tmp_path, ranks):
    """A checkpoint that does not fit: exit 1 naming the file and the OS error, no partial
    file left, the previous checkpoint intact (RLIMIT_FSIZE stands in for a full disk)."""
    data = make_data(tmp_path / "d", features=32)
    run = tmp_path / "run"
    check(run_cli(["train", "--data", data, "--out", run, "--steps", "2", "--hidden",
                   "3000,3000", "--allreduce", "ring"]))      # a 108 MB checkpoint
    before = snapshot_checkpoints(run)
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "hpctrain", "train",
           "--out", run, "--resume", "--steps", "4", "--hidden", "3000,3000"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=child_env(),
                          preexec_fn=limited_file_size(64 << 20))
    assert proc.returncode in (1, 2), proc.stderr
    mine = [line for line in proc.stderr.splitlines() if "cannot write" in line]
    assert len(mine) == 1 and "File too large" in mine[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot_checkpoints(run) == before
    assert not [n for n in os.listdir(run / "checkpoints") if n.endswith(".tmp")]


def snapshot_checkpoints(run) -> dict:
    return {os.path.basename(p): open(p, "rb").read() for p in checkpoints(run)}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories anyway")
def test_a_read_only_run_directory_is_one_line(tmp_path):
    data = make_data(tmp_path / "d")
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    try:
        proc = run_cli(["train", "--data", data, "--out", run, "--epochs", "1"])
    finally:
        run.chmod(0o755)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Permission denied" in proc.stderr


def test_a_broken_config_json_on_resume_names_the_file(tmp_path):
    data = make_data(tmp_path / "d")
    run = tmp_path / "run"
    check(run_cli(["train", "--data", data, "--out", run, "--steps", "2", "--allreduce",
                   "ring"]))
    (run / "config.json").write_text("")          # what a full disk left behind before
    proc = run_cli(["train", "--out", run, "--resume"])
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"hpctrain: error: {run / 'config.json'}: the run's config "
                                  f"is not valid JSON")


@pytest.mark.hydra_signals
@pytest.mark.parametrize("stopped", [2, 0])
def test_a_stopped_rank_ends_the_job_naming_it(data, tmp_path, stopped):
    """SIGSTOP of one rank (a hung node): the job ends within the stall timeout plus a few
    seconds, with one line naming the rank that did not arrive and its host."""
    run = str(tmp_path / "run")
    proc = start_training(3, data, run, 1000000, ["--stall-timeout", "4"])
    wait_for_log(run, proc)
    ranks = sorted(pid for pid in rank_pids(proc) if not descendants(pid))
    victim = rank_of(ranks, stopped)
    os.kill(victim, signal.SIGSTOP)
    began = time.monotonic()
    try:
        out, err = proc.communicate(timeout=4 + 30)
    finally:
        try:
            os.kill(victim, signal.SIGCONT)
        except ProcessLookupError:  # the abort took it already
            pass
        proc.kill()
    assert time.monotonic() - began < 4 + 30
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if "stall:" in line]
    assert len(lines) == 1, err
    if stopped == 0:
        assert "rank 0 (host " in lines[0] and "has not answered" in lines[0]
    else:
        assert f"ranks that did not arrive: {stopped} (host " in lines[0], lines[0]


def rank_of(pids, rank) -> int:
    """The pid of MPI rank `rank` among the ranks' pids (from PMI_RANK in its environment)."""
    for pid in pids:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        if env.get(b"PMI_RANK") == str(rank).encode():
            return pid
    raise AssertionError(f"no rank {rank} among {pids}")


def start_agent(data, run, steps, max_restarts, extra=()):
    cmd = [sys.executable, "-m", "hpctrain", "run", "-n", "2", "--max-restarts",
           str(max_restarts), "--", "train", "--data", data, "--out", run, "--steps",
           str(steps), "--checkpoint-every", "100", *SLOW_MODEL, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


def kill_one_rank(proc) -> None:
    ranks = [pid for pid in rank_pids(proc) if not descendants(pid)
             and b"-m\0hpctrain\0train" in open(f"/proc/{pid}/cmdline", "rb").read()]
    assert len(ranks) == 2, ranks
    os.kill(ranks[1], signal.SIGKILL)


def test_run_restarts_a_failed_job_from_its_checkpoint(data, tmp_path):
    run, steps = str(tmp_path / "run"), 3000
    agent = start_agent(data, run, steps, max_restarts=2)
    deadline = time.monotonic() + 120
    while not checkpoints_exist(run) and time.monotonic() < deadline:
        assert agent.poll() is None, agent.communicate()
        time.sleep(0.05)
    kill_one_rank(agent)
    out, err = agent.communicate(timeout=300)
    assert agent.returncode == 0, err
    assert err.count("hpctrain run: the job failed") == 1, err
    assert "restart 1 of 2 from the newest good checkpoint" in err
    with open(os.path.join(run, "summary.json")) as f:
        done = json.load(f)
    assert done["restarts"] == 1 and done["steps"] == steps
    logged = [r["step"] for r in metrics(run) if "loss" in r]
    assert logged == sorted(set(logged)) and logged[-1] == steps


def checkpoints_exist(run) -> bool:
    folder = os.path.join(run, "checkpoints")
    return os.path.isdir(folder) and any(f.endswith(".h5") for f in os.listdir(folder))


def test_run_gives_up_after_max_restarts_and_never_restarts_bad_input(data, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hpctrain", "run", "-n", "2", "--", "train",
                           "--data", data, "--out", tmp_path / "r", "--lr", "-1"],
                          capture_output=True, text=True, timeout=120, env=child_env())
    assert proc.returncode == 2 and "restart" not in proc.stderr
    env = child_env(HPCTRAIN_FAULT="raise@1:3")
    proc = subprocess.run([sys.executable, "-m", "hpctrain", "run", "-n", "2",
                           "--max-restarts", "1", "--", "train", "--data", data,
                           "--out", tmp_path / "r2", "--steps", "20", "--allreduce", "ring"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    assert "restart 1 of 1" in proc.stderr and "no restarts left" in proc.stderr
    assert "injected fault at step 3" in proc.stderr.split("no restarts left")[0]


@pytest.mark.hydra_signals
def test_a_signal_to_run_stops_the_job_and_the_agent(data, tmp_path):
    run = str(tmp_path / "run")
    agent = start_agent(data, run, 1000000, max_restarts=3)
    wait_for_log(run, agent)
    code, out, err, _ = stop_with(agent, [signal.SIGTERM])
    assert code == EXIT_STOPPED, err
    assert "hpctrain run: the job failed" not in err
    assert ckpt.load(checkpoints(run)[-1]).step == metrics(run)[-1]["step"]


def test_a_short_stall_timeout_spares_the_first_steps_compilation(data, tmp_path):
    """A cold kernel cache (a new node) makes the first step compile for many seconds; a
    --stall-timeout meant for the steady state must not end the job there."""
    env = child_env(XDG_CACHE_HOME=str(tmp_path / "cold-cache"))
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "hpctrain", "train", "--data", data,
           "--out", str(tmp_path / "run"), "--steps", "3", "--stall-timeout", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "stall:" not in proc.stderr


def test_a_slow_last_checkpoint_is_not_a_stall_of_the_finished_ranks(data, tmp_path):
    """The other ranks are done and wait for rank 0's last checkpoint (3 s here, a slow file
    system): with --stall-timeout 2 the run must still end well."""
    env = child_env(HPCTRAIN_FAULT="slowsave@0:3")
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "hpctrain", "train", "--data", data,
           "--out", str(tmp_path / "run"), "--steps", "3", "--stall-timeout", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "stall:" not in proc.stderr
