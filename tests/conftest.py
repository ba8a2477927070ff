import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

# Tests run many short processes: one BLAS/Numba thread each, one shared kernel cache.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
