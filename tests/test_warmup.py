"""`hpctrain warmup`: after it, training, evaluation and prediction compile nothing."""

from helpers import check, child_env, run_cli, run_mpi
from train_util import make_data


def compiled_and_loaded(proc) -> tuple[int, int]:
    """Numba's own report (NUMBA_DEBUG_CACHE=1): kernels compiled and saved, kernels loaded."""
    out = proc.stdout + proc.stderr
    return out.count("data saved to"), out.count("data loaded from")


def test_after_warmup_nothing_compiles(tmp_path):
    # a fresh Numba cache, and a fresh auto cache (XDG_CACHE_HOME): auto measures, as on a
    # new machine
    env = child_env(NUMBA_CACHE_DIR=tmp_path / "cache", NUMBA_DEBUG_CACHE=1,
                    XDG_CACHE_HOME=tmp_path / "xdg")
    data = make_data(tmp_path / "data", samples=80, features=4, classes=3, shards=2, test=0.25)
    warm = check(run_mpi(2, ["warmup"], env=env))
    assert "every cpu kernel is in the cache" in warm.stdout
    assert compiled_and_loaded(warm)[0] > 0            # it did the compiling
    run = tmp_path / "run"
    for proc in (run_mpi(2, ["train", "--data", data, "--out", run, "--steps", "4",
                             "--hidden", "5", "--optimizer", "sgd", "--momentum", "0.5"],
                         env=env),
                 run_cli(["evaluate", "--data", data, "--checkpoint", run], env=env),
                 run_cli(["predict", "--checkpoint", run, "--data", data, "--split", "train",
                          "--out", tmp_path / "p.npy"], env=env)):
        saved, loaded = compiled_and_loaded(check(proc))
        compiled = [line.split("/")[-1] for line in (proc.stdout + proc.stderr).splitlines()
                    if "data saved" in line]
        assert saved == 0 and loaded > 0, (proc.args, compiled)
        assert "compiling kernels" not in proc.stderr


def test_warmup_compiles_every_allreduce_even_when_auto_has_already_chosen(tmp_path):
    # auto keeps its choice per machine (XDG_CACHE_HOME), so a later warm-up into a fresh
    # Numba cache (a new version, another cache directory) measures nothing: it must still
    # compile what each algorithm runs
    xdg = tmp_path / "xdg"
    check(run_mpi(2, ["warmup"], env=child_env(NUMBA_CACHE_DIR=tmp_path / "old",
                                               XDG_CACHE_HOME=xdg)))
    env = child_env(NUMBA_CACHE_DIR=tmp_path / "cache", NUMBA_DEBUG_CACHE=1, XDG_CACHE_HOME=xdg)
    check(run_mpi(2, ["warmup"], env=env))
    data = make_data(tmp_path / "data", samples=60, features=4, shards=2)
    for algorithm in ("native", "ring", "doubling", "shm"):
        proc = check(run_mpi(2, ["train", "--data", data, "--out", tmp_path / algorithm,
                                 "--steps", "2", "--hidden", "5", "--allreduce", algorithm],
                             env=env))
        compiled = [line.split("/")[-1] for line in (proc.stdout + proc.stderr).splitlines()
                    if "data saved" in line]
        assert not compiled, (algorithm, compiled)
