"""The public Python API: light imports, `fit` on one rank and under mpiexec, the examples."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, check, child_env, run_cli, run_mpi_script
from train_util import make_data

MPI_SCRIPTS = os.path.join(os.path.dirname(__file__), "mpi")
EXAMPLES = os.path.join(REPO, "examples")


def loaded_after(statement: str) -> dict:
    """Which heavy modules a fresh interpreter has loaded after `statement`."""
    probe = (f"{statement}; import sys, json; print(json.dumps({{m: m in sys.modules for m in "
             f"('mpi4py.MPI', 'numba', 'h5py')}}))")
    proc = check(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                timeout=120, env=child_env()))
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", ["import hpctrain", "import hpctrain.comm",
                                       "import hpctrain.data",
                                       "import hpctrain; hpctrain.__version__; dir(hpctrain)"])
def test_imports_start_neither_mpi_nor_numba(statement):
    loaded = loaded_after(statement)
    assert not loaded["mpi4py.MPI"] and not loaded["numba"], loaded


def test_the_api_names_resolve_to_functions_not_modules():
    # hpctrain.train / hpctrain.fit must stay the functions even after their modules load
    out = check(subprocess.run([sys.executable, "-c", (
        "import hpctrain.training, hpctrain.fitting, hpctrain; "
        "print(callable(hpctrain.train), callable(hpctrain.fit), hpctrain.MLP.__name__, "
        "sorted(hpctrain.__all__) == hpctrain.__all__)")],
        capture_output=True, text=True, timeout=120, env=child_env())).stdout.split()
    assert out == ["True", "True", "MLP", "True"]


def fit_on(ranks, tmp_path, shuffle):
    out = str(tmp_path / f"params-{ranks}-{shuffle}.npy")
    proc = check(run_mpi_script(ranks, os.path.join(MPI_SCRIPTS, "fit_ranks.py"),
                                [out, shuffle], timeout=300))
    assert "ok accuracy" in proc.stdout
    accuracy = float(proc.stdout.split("ok accuracy")[1].split()[0])
    return np.load(out), accuracy


def test_fit_under_mpiexec_is_the_one_rank_model(tmp_path):
    """Uneven rows on 3 ranks, global shuffle and batch: the one-rank parameters to 1e-5."""
    one, acc_one = fit_on(1, tmp_path, "global")
    three, acc_three = fit_on(3, tmp_path, "global")
    assert acc_one > 0.8, acc_one
    np.testing.assert_allclose(three, one, rtol=1e-5, atol=1e-6)
    assert abs(acc_three - acc_one) < 1e-3


def test_fit_saves_a_checkpoint_the_cli_loads(tmp_path):
    fit_on(2, tmp_path, "local")
    saved = str(tmp_path / "params-2-local.h5")
    rows = np.random.default_rng(0).standard_normal((9, 6)).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    check(run_cli(["predict", "--checkpoint", saved, "--input", tmp_path / "rows.npy",
                   "--out", tmp_path / "p.npy"]))
    from hpctrain.fitting import load

    expected = load(saved).predict_proba(rows)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-6)


def test_fit_rejects_bad_input_in_one_line():
    probe = ("import numpy as np, hpctrain; "
             "hpctrain.fit(np.ones((4, 3)), np.array([0, 1, np.nan, 1]))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env=child_env())
    assert proc.returncode != 0
    assert "InputError: X and y must be finite" in proc.stderr


def test_example_fit_sklearn_under_mpiexec():
    proc = check(run_mpi_script(2, os.path.join(EXAMPLES, "fit_sklearn.py"), timeout=300))
    accuracy = float(proc.stdout.split("accuracy")[1].split()[0])
    assert "test rows 143" in proc.stdout and accuracy > 0.9, proc.stdout


@pytest.mark.parametrize("algorithm", ["ring", "doubling"])
def test_example_custom_loop(algorithm):
    proc = check(run_mpi_script(2, os.path.join(EXAMPLES, "custom_loop.py"), [algorithm],
                                timeout=300))
    assert "same parameters on every rank: True" in proc.stdout, proc.stdout
    assert float(proc.stdout.split("accuracy")[1].split()[0]) > 0.9


def test_example_inference_loads_a_cli_checkpoint(tmp_path):
    data = make_data(tmp_path / "d", samples=300, features=5)
    check(run_cli(["train", "--data", data, "--out", tmp_path / "run", "--epochs", "1",
                   "--allreduce", "ring"]))
    checkpoint = sorted((tmp_path / "run" / "checkpoints").iterdir())[-1]
    rows = np.zeros((3, 5), dtype=np.float32)
    np.save(tmp_path / "rows.npy", rows)
    proc = check(subprocess.run([sys.executable, os.path.join(EXAMPLES, "inference.py"),
                                 str(checkpoint), str(tmp_path / "rows.npy")],
                                capture_output=True, text=True, timeout=120, env=child_env()))
    assert "features=5" in proc.stdout and proc.stdout.count("predictions:") == 1


def test_example_inference_without_arguments():
    proc = check(subprocess.run([sys.executable, os.path.join(EXAMPLES, "inference.py")],
                                capture_output=True, text=True, timeout=300, env=child_env()))
    assert "predictions:" in proc.stdout
