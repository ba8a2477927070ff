import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

# Tests run many short processes: one BLAS/Numba thread each, one shared kernel cache.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Keep the user's Numba cache (compiling is slow), but give `auto` a private cache, so tests
# never read or overwrite the algorithm choices measured for real runs.
from hpctrain.runtime import cache_dir  # noqa: E402

os.environ.setdefault("NUMBA_CACHE_DIR", cache_dir("numba"))
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="hpctrain-test-cache-")


# Under Open MPI (CI's second run, from .venv-ompi), what it needs here (helpers.py says why).
import helpers  # noqa: E402
import pytest  # noqa: E402

if helpers.is_open_mpi():
    for name, value in helpers.OPEN_MPI_ENV.items():
        os.environ.setdefault(name, value)

# The multi-rank tests, marked `mpi` (CI runs them under each MPI: `pytest -m mpi`): every
# module that launches ranks through helpers, and those whose commands start mpiexec or
# srun themselves (demo, bench scaling, run -n, SLURM jobs).
LAUNCH_HELPERS = ("run_mpi", "run_mpi_script", "mpiexec")
LAUNCHING_MODULES = {"test_api", "test_cli", "test_scaling", "test_scaling_layouts",
                     "test_slurm", "test_train", "test_config_untrusted", "test_train_cuda"}


def pytest_configure(config):
    config.addinivalue_line("markers", "mpi: starts MPI ranks (CI runs these under each MPI)")
    config.addinivalue_line(
        "markers", "hydra_signals: relies on how MPICH's launcher (hydra) passes signals and "
        "exit codes and on its process tree; Open MPI's prterun differs (docs/RELIABILITY.md, "
        "'Under Open MPI'), so CI's Open MPI pass leaves these out")


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module
        uses_helper = any(getattr(module, name, None) is getattr(helpers, name)
                          for name in LAUNCH_HELPERS)
        if uses_helper or module.__name__ in LAUNCHING_MODULES:
            item.add_marker(pytest.mark.mpi)
