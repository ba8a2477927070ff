"""Untrusted input to `hpctrain train`: every flag and TOML key is checked for its type and
range once, before anything is created, and a bad one is ONE line `hpctrain: error: ...`
naming it (and its file), exit 2; under mpiexec rank 0 alone says it and every rank exits 2.
Sizes are trusted only after the memory they need is estimated; the threads per rank follow
SLURM's --cpus-per-task; a global batch larger than the data is worth a warning."""

import json
import os
import sys

import pytest
from helpers import check, child_env, own_lines, run_cli, run_mpi
from train_util import make_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("d") / "data", samples=399, features=5, shards=2)


def train_args(data, run, *flags):
    return ["train", "--data", data, "--out", run, "--steps", "2", "--log-every", "1", *flags]


def assert_one_error_line(proc, *names, run=None):
    """Exit 2, exactly one line on stderr, `hpctrain: error: ...` naming every one of
    `names`, no traceback, and no run directory made."""
    lines = own_lines(proc.stderr)
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("hpctrain: error: "), proc.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    if run is not None:
        assert not os.path.exists(run), os.listdir(run)


# flags -> what the one line must name
BAD_FLAGS = [
    (["--threads", "0"], "--threads"),
    (["--threads", "-2"], "--threads"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--momentum", "1"], "--momentum"),
    (["--weight-decay", "nan"], "--weight-decay"),
    (["--bucket-mb", "inf"], "--bucket-mb"),
    (["--checkpoint-every-s", "nan"], "--checkpoint-every-s"),
    (["--stall-timeout", "-1"], "--stall-timeout"),
    (["--batch-size", "0"], "--batch-size"),
    (["--global-batch", "-4"], "--global-batch"),
    (["--epochs", "0"], "--epochs"),
    (["--keep-checkpoints", "-1"], "--keep-checkpoints"),
    (["--seed", "-1"], "--seed"),
    (["--hidden", "8,0"], "--hidden"),
    (["--hidden", "8,x"], "--hidden"),
]


@pytest.mark.parametrize("flags, name", BAD_FLAGS, ids=lambda v: " ".join(v) if
                         isinstance(v, list) else v)
def test_a_bad_flag_is_one_line_and_exit_2(data, tmp_path, flags, name):
    run = str(tmp_path / "run")
    assert_one_error_line(run_cli(train_args(data, run, *flags)), name, run=run)


# TOML text -> the key the one line must name
BAD_TOML = [
    ('[train]\nlr = "fast"\n', "lr"),
    ('[train]\nthreads = "2"\n', "threads"),
    ('[train]\nthreads = 0\n', "threads"),
    ("train = 5\n", "train"),
    ("[train]\nbatch-size = 1.5\n", "batch-size"),
    ("[train]\nepochs = true\n", "epochs"),
    ('[train]\nresume = "yes"\n', "resume"),
    ('[train]\noptimizer = "lbfgs"\n', "optimizer"),
    ('[train]\nactivation = "swish"\n', "activation"),
    ('[train]\nallreduce = "carrier-pigeon"\n', "allreduce"),
    ("[train]\nlr = nan\n", "lr"),
    ("[train]\nmomentum = -0.5\n", "momentum"),
    ("[train]\nhidden = [64, 1.5]\n", "hidden"),
    ("[train]\nhidden = true\n", "hidden"),
    ('[train]\ndata = 5\n', "data"),
    ("[train]\nsteps = 0\n", "steps"),
    ("[train]\nno-such-key = 1\n", "no-such-key"),
    ("[train]\nstall-timeout = inf\n", "stall-timeout"),
]


@pytest.mark.parametrize("text, key", BAD_TOML, ids=lambda v: v.replace("\n", " ").strip())
def test_a_bad_toml_key_is_one_line_naming_key_and_file(data, tmp_path, text, key):
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    run = str(tmp_path / "run")
    proc = run_cli(train_args(data, run, "--config", toml))
    assert_one_error_line(proc, key, str(toml), run=run)


def test_good_toml_values_still_train(data, tmp_path):
    """Ints where floats go, hyphenated or underscored keys, a hidden list or string."""
    toml = tmp_path / "good.toml"
    toml.write_text('[train]\nlr = 1\nbatch-size = 32\nhidden = [8, 4]\nshuffle = "global"\n'
                    'weight_decay = 0\nresume = false\nthreads = 1\n')
    run = tmp_path / "run"
    check(run_cli(train_args(data, run, "--config", toml)))
    saved = json.loads((run / "config.json").read_text())
    assert saved["lr"] == 1.0 and saved["hidden"] == [8, 4] and saved["batch_size"] == 32


@pytest.mark.parametrize("flags, toml", [
    (["--lr", "nan"], None),
    (["--threads", "0"], None),
    ([], '[train]\nthreads = "2"\n'),
    ([], '[train]\noptimizer = "lbfgs"\n'),
])
def test_under_mpiexec_rank_0_alone_says_it(data, tmp_path, flags, toml):
    run = str(tmp_path / "run")
    if toml is not None:
        (tmp_path / "c.toml").write_text(toml)
        flags = [*flags, "--config", tmp_path / "c.toml"]
    proc = run_mpi(2, train_args(data, run, *flags), timeout=120)
    assert_one_error_line(proc, run=run)
    assert "Abort" not in proc.stdout + proc.stderr


# --- sizes: the memory a rank needs, estimated before anything is allocated -----------------

@pytest.mark.parametrize("flags, names", [
    (["--hidden", "100000000000"], ["--hidden", "GB"]),
    (["--hidden", "8", "--batch-size", "1000000000000"], ["--batch-size", "GB"]),
])
def test_a_model_too_big_for_memory_is_refused_with_the_estimate(data, tmp_path, flags, names):
    run = str(tmp_path / "run")
    proc = run_cli(train_args(data, run, *flags))
    assert_one_error_line(proc, *names, run=run)
    assert "memory" in proc.stderr


def test_the_memory_estimate_counts_parameters_optimizer_batch_and_rows():
    from hpctrain.config import TrainConfig
    from hpctrain.startup import estimate_rank_bytes

    layers = (10, 100, 1)  # 10*100+100 + 100+1 = 1201 parameters
    adam = TrainConfig(hidden=(100,), batch_size=50)
    sgd = TrainConfig(hidden=(100,), batch_size=50, optimizer="sgd", momentum=0.0)
    batch = 50 * (10 + 100 + 1) * 4 * 2
    rows = 500 * (10 + 1) * 4  # 1000 rows over 2 ranks
    assert estimate_rank_bytes(layers, adam, 2, 1000) == 1201 * 4 * 4 + batch + rows
    assert estimate_rank_bytes(layers, sgd, 2, 1000) == 1201 * 4 * 2 + batch + rows
    # sizes far beyond int64 are counted exactly, not wrapped around
    huge = (10, 10**12, 10**12, 1)
    assert estimate_rank_bytes(huge, adam, 1, 1000) > 10**24 * 16


# --- threads per rank -------------------------------------------------------------------------

RESOLVE = ("import sys; from hpctrain import runtime; "
           "n = runtime.resolve_threads(None if sys.argv[1] == '-' else int(sys.argv[1])); "
           "runtime.configure(n); import numba; print(n, numba.get_num_threads())")


def threads_env(**values):
    env = child_env()
    for var in ("SLURM_CPUS_PER_TASK", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        env.pop(var, None)
    env.update(values)
    return env


@pytest.mark.parametrize("env, given, expected", [
    ({"SLURM_CPUS_PER_TASK": "2", "NUMBA_NUM_THREADS": "1"}, None, 2),
    ({"NUMBA_NUM_THREADS": "2"}, None, 2),
    ({"OMP_NUM_THREADS": "2"}, None, 2),
    ({}, None, 1),
    ({"SLURM_CPUS_PER_TASK": "2"}, 1, 1),  # an explicit --threads wins
])
def test_the_threads_default_follows_slurm_then_the_environment(env, given, expected):
    import subprocess

    proc = check(subprocess.run([sys.executable, "-c", RESOLVE, "-" if given is None
                                 else str(given)], capture_output=True, text=True,
                                env=threads_env(**env), timeout=120))
    assert proc.stdout.split() == [str(expected), str(expected)]


def test_train_runs_slurm_cpus_per_task_threads(data, tmp_path):
    run = tmp_path / "run"
    proc = check(run_cli(train_args(data, run), env=threads_env(SLURM_CPUS_PER_TASK="2",
                                                                NUMBA_NUM_THREADS="1")))
    assert json.loads((run / "config.json").read_text())["threads"] == 2, proc.stderr


def test_a_resumed_run_takes_its_threads_from_this_start_not_its_config(data, tmp_path):
    """Threads are how a start runs, not what the run is: a requeued job with another
    --cpus-per-task follows it (and config.json records the new count)."""
    run = tmp_path / "run"
    check(run_cli(train_args(data, run), env=threads_env()))
    assert json.loads((run / "config.json").read_text())["threads"] == 1
    check(run_cli(["train", "--out", run, "--resume", "--steps", "4"],
                  env=threads_env(SLURM_CPUS_PER_TASK="2")))
    assert json.loads((run / "config.json").read_text())["threads"] == 2


def test_a_bad_value_in_a_resumed_runs_config_json_names_file_and_key(data, tmp_path):
    run = tmp_path / "run"
    check(run_cli(train_args(data, run)))
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "batch_size": "many"}))
    before = sorted(os.listdir(run))
    proc = run_cli(["train", "--out", run, "--resume"])
    assert_one_error_line(proc, str(run / "config.json"), "batch_size")
    assert sorted(os.listdir(run)) == before


def test_a_bad_slurm_cpus_per_task_is_one_line(data, tmp_path):
    run = str(tmp_path / "run")
    proc = run_cli(train_args(data, run), env=threads_env(SLURM_CPUS_PER_TASK="lots"))
    assert_one_error_line(proc, "SLURM_CPUS_PER_TASK", "--threads", run=run)


def test_more_threads_than_cores_is_warned_once(data, tmp_path):
    cores = len(os.sched_getaffinity(0))
    proc = check(run_mpi(2, train_args(data, str(tmp_path / "run"), "--threads", str(cores)),
                         timeout=120))
    warnings = [line for line in proc.stderr.splitlines() if "oversubscribe" in line]
    assert len(warnings) == 1 and warnings[0].startswith("hpctrain: warning: "), proc.stderr
    assert f"2 ranks x {cores} threads" in warnings[0]


def test_threads_that_fit_are_not_warned(data, tmp_path):
    proc = check(run_cli(train_args(data, str(tmp_path / "run"), "--threads", "1")))
    assert "oversubscribe" not in proc.stderr, proc.stderr


# --- a global batch larger than the data --------------------------------------------------------

def test_a_global_batch_larger_than_the_rows_is_warned(data, tmp_path):
    proc = check(run_cli(train_args(data, str(tmp_path / "one"), "--batch-size", "512")))
    warnings = [line for line in proc.stderr.splitlines() if "global batch" in line]
    assert len(warnings) == 1 and warnings[0].startswith("hpctrain: warning: "), proc.stderr
    assert "512" in warnings[0] and "399" in warnings[0]


def test_a_global_batch_larger_than_the_rows_is_warned_once_under_mpiexec(data, tmp_path):
    proc = check(run_mpi(2, train_args(data, str(tmp_path / "two"), "--batch-size", "256"),
                         timeout=120))
    warnings = [line for line in proc.stderr.splitlines() if "global batch" in line]
    assert len(warnings) == 1 and "512" in warnings[0] and "2 ranks" in warnings[0], \
        proc.stderr


def test_a_global_batch_that_fits_is_not_warned(data, tmp_path):
    proc = check(run_cli(train_args(data, str(tmp_path / "run"), "--global-batch", "399")))
    assert "global batch" not in proc.stderr, proc.stderr
