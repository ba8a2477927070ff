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
