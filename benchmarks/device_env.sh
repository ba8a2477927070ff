# Sourced by the device studies: Open MPI as root, one thread per rank, hpctrain installed
# offline (the lent machine has no network). Every variable of hpctrain.runtime.THREAD_VARS
# (a test keeps the lists equal); the Python programs set them too, this also covers the
# launchers and tools between.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PYTHONUNBUFFERED=1
export NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
       BLIS_NUM_THREADS=1 VECLIB_MAXIMUM_THREADS=1
python3 -m pip install -q --no-deps --no-build-isolation -e "$here/.." >/dev/null 2>&1 \
    || { echo "install failed"; exit 1; }
