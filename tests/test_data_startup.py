"""What `hpctrain.data` and `hpctrain data ...` load: never MPI or Numba, NumPy only on use.

Each check runs in a fresh interpreter (a subprocess), because this test process has long
since imported everything.
"""

import json
import subprocess
import sys

from helpers import child_env

HEAVY = ("mpi4py.MPI", "numba", "numpy", "h5py")


def loaded_after(code: str, cwd) -> set:
    """The HEAVY modules in sys.modules once `code` has run in a fresh interpreter."""
    probe = (f"import json, sys\n{code}\n"
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env=child_env(), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def run_command(*args) -> str:
    """Code that runs `hpctrain ARGS` in-process, failing unless it exits 0."""
    return ("from hpctrain.cli import cli\n"
            f"assert cli.main(args={list(map(str, args))!r}, standalone_mode=False) in "
            "(None, 0)")


def test_import_loads_neither_mpi_nor_numba_nor_numpy(tmp_path):
    code = "import hpctrain.data\nfrom hpctrain.data import rank_slice\nrank_slice(10, 1, 3)"
    assert loaded_after(code, tmp_path) == set()


def test_opening_a_dataset_loads_numpy_and_h5py_but_not_mpi_or_numba(tmp_path):
    code = ("from hpctrain.data import open_dataset\n"
            "from hpctrain.data.synth import make_synthetic\n"
            "make_synthetic('ds', samples=20, features=2, classes=2, shards=1)\n"
            "open_dataset('ds').close()")
    assert loaded_after(code, tmp_path) == {"numpy", "h5py"}


def test_data_commands_load_neither_mpi_nor_numba(tmp_path):
    assert loaded_after(run_command("data", "--help"), tmp_path) == set()
    synth = run_command("data", "synth", "--out", "ds", "--samples", 30, "--features", 2)
    inspect = run_command("data", "inspect", "ds", "--verify")
    assert loaded_after(f"{synth}\n{inspect}", tmp_path) == {"numpy", "h5py"}
    assert (tmp_path / "ds" / "manifest.json").is_file()
