"""Dense products through the vendor BLAS: cuBLAS's GemmEx, reached through CuPy, on the
engine's own stream, at the run's precision.

Why a vendor BLAS: cuBLAS reaches 48-51 TFLOP/s in fp32 on the H200 where our numba-cuda
tiles reach 19-29, and only it reaches the tensor cores (numba-cuda has no instructions for
them): TF32 and bf16 products at several times that. Why CuPy: it is a well-kept binding that
exposes cublasGemmEx with every operand type and compute type, its calls cost microseconds
from Python, and it shares the device and the CUDA context with numba-cuda (docs/GPU.md has
the measurement and the alternatives).

Precisions (fp32 master weights and optimizer state in every case; outputs float32):
    fp32  float32 operands, float32 arithmetic (CUBLAS_COMPUTE_32F)
    tf32  float32 operands, tensor cores at TF32 (CUBLAS_COMPUTE_32F_FAST_TF32)
    bf16  bfloat16 operands (uint16 arrays, kernels/cuda_epilogue.py), float32 sums

Each Blas has its own cuBLAS handle with its own workspace (`WORKSPACE_BYTES`, NVIDIA's
recommendation for Hopper): the engine's stream and settings are never another user's.

Row-major products in column-major cuBLAS: a row-major (r, c) matrix is a column-major
(c, r) one, its transpose. So C = A B (row-major) is C^T = B^T A^T (column-major): the
operands swap places and keep their transpose flags. `row_major` does that bookkeeping once.
CuPy's gemmEx runs on CuPy's current stream: the caller makes `stream` current (`on_stream`).
"""

import weakref

import numpy as np

PRECISIONS = ("fp32", "tf32", "bf16")
_OP_N, _OP_T = 0, 1
_R_32F, _R_16BF = 0, 14                                 # cudaDataType
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32 = 68, 77           # cublasComputeType_t
_GEMM_DEFAULT = -1                                      # cublasGemmAlgo_t
WORKSPACE_BYTES = 32 << 20


def blas_available() -> tuple[bool, str]:
    """(True, what) when CuPy's cuBLAS can run here, else (False, why), never raising."""
    try:
        import cupy
        from cupy_backends.cuda.libs import cublas  # noqa: F401 (its presence is the check)

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # not installed, or no driver/GPU it can use
        return False, f"CuPy's cuBLAS cannot be used ({type(err).__name__}: {err})"
    if count == 0:
        return False, "CuPy finds no GPU"
    return True, f"CuPy {cupy.__version__}, cuBLAS"


def pointer(array) -> int:
    """The device address of a numba-cuda (or any CUDA array interface) array."""
    return int(array.__cuda_array_interface__["data"][0])


class Blas:
    """cuBLAS on one numba-cuda stream at one precision; `row_major` prepares a product."""

    def __init__(self, stream, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        import cupy
        from cupy_backends.cuda.libs import cublas

        from .cuda_shim import cuda

        self.cublas, self.precision = cublas, precision
        external = getattr(cupy.cuda.Stream, "from_external", None)   # CuPy >= 14
        self.stream = external(stream) if external else \
            cupy.cuda.ExternalStream(int(stream.__cuda_stream__()[1]))
        self.handle = cublas.create()
        weakref.finalize(self, _destroy, cublas, self.handle)
        self.workspace = cuda.device_array(WORKSPACE_BYTES, dtype=np.uint8)
        set_workspace = getattr(cublas, "setWorkspace", None)
        if set_workspace is not None:
            set_workspace(self.handle, pointer(self.workspace), WORKSPACE_BYTES)
        # without the call (older CuPy) cuBLAS allocates its own workspace at the first product
        # alpha and beta live in host memory (cuBLAS's default pointer mode), for good
        self.scalars = np.array([1.0, 0.0], dtype=np.float32)
        self.one, self.zero = self.scalars.ctypes.data, self.scalars.ctypes.data + 4

    @property
    def low(self) -> bool:
        """True when the products read bfloat16 copies of their operands."""
        return self.precision == "bf16"

    def row_major(self, A, a_shape, trans_a, B, b_shape, trans_b, C, accumulate=False,
                  exact=False):
        """A prepared C (row-major, float32) = [C +] op(A) op(B), op = transpose or not.

        A, B: device arrays (float32, or uint16 bf16 copies when self.low); a_shape and
        b_shape their row-major (rows, cols) before op. exact: float32 arithmetic whatever
        the precision (a bias gradient's sum costs nothing and gains from it)."""
        (ar, ac), (br, bc) = a_shape, b_shape
        m, k = (ac, ar) if trans_a else (ar, ac)
        k2, n = (bc, br) if trans_b else (br, bc)
        if k != k2:
            raise ValueError(f"inner sizes differ: {a_shape} and {b_shape}")
        low = self.low and not exact
        kind = _R_16BF if low else _R_32F
        compute = _COMPUTE_32F_FAST_TF32 if self.precision == "tf32" and not exact \
            else _COMPUTE_32F
        # column-major: C^T (n, m) = op(B)^T (n, k) op(A)^T (k, m)
        args = (self.handle, _OP_T if trans_b else _OP_N, _OP_T if trans_a else _OP_N,
                n, m, k, self.one, pointer(B), kind, bc, pointer(A), kind, ac,
                self.one if accumulate else self.zero, pointer(C), _R_32F, n, compute,
                _GEMM_DEFAULT)
        gemm = self.cublas.gemmEx
        keep = (A, B, C)            # the arrays must outlive the addresses bound above

        def product():
            gemm(*args)
        product.keep = keep
        return product


def _destroy(cublas, handle) -> None:
    try:
        cublas.destroy(handle)
    except Exception:  # the context may already be gone at exit: nothing left to free
        pass
