"""The cuBLAS path (kernels/cuda_blas.py, cuda_blas_plan.py), its elementwise kernels
(cuda_epilogue.py) and the rows held on the GPU (cuda_resident.py).

Run by tests/test_cuda.py like cases.py: the elementwise kernels and the held rows under the
simulator and on a GPU; the cuBLAS products, plans and engine only on a GPU with CuPy
(`python3 -m pytest tests/cuda_sim/products_cases.py` there), against the float64 reference.
"""

import sys

import numpy as np
import pytest
from hpctrain.kernels import ACTIVATIONS
from hpctrain.kernels.cuda_shim import cuda, simulated
from reference import close, close_to_product, loss_grad, random_problem

SIM = simulated()
if SIM:
    sys.setswitchinterval(1e-4)     # the simulator polls its Python threads: faster barriers

from hpctrain.kernels import cuda_epilogue as epi  # noqa: E402
from hpctrain.kernels.cuda_blas import blas_available  # noqa: E402

ACTS = ("identity", "relu", "tanh", "sigmoid")
SM = 4 if SIM else 132
BLAS = not SIM and blas_available()[0]
needs_blas = pytest.mark.skipif(not BLAS, reason="needs a GPU with CuPy's cuBLAS")


def put(a, dtype=np.float32):
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))


def bf16_reference(x):
    """The nearest bfloat16 to each float32 (ties to the even one), as float64: from the two
    neighbours that keep the upper 16 bits, not from the rounding formula itself."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    down = bits & 0xFFFF0000
    up = down + 0x10000
    as_float = lambda b: (b.astype(np.uint32)).view(np.float32).astype(np.float64)  # noqa: E731
    x64, lo, hi = np.asarray(x, np.float64), as_float(down), as_float(up)
    take_up = (np.abs(hi - x64) < np.abs(x64 - lo)) | (
        (np.abs(hi - x64) == np.abs(x64 - lo)) & (((down >> 16) & 1) == 1))
    return np.where(take_up, hi, lo)


def from_bf16(low):
    return (np.asarray(low, np.uint32) << 16).view(np.float32).astype(np.float64)


def launch(kernel, total, *args):
    kernel[epi.element_config(total, SM, 0)[:2]](*args)
    cuda.synchronize()


# --- the elementwise kernels (simulator and GPU) ---------------------------------------------

def test_bf16_copies_round_to_the_nearest_even(rng):
    n = 301 if SIM else 100_003
    x = (rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))).astype(np.float32)
    # exact ties: the upper half's lowest bit decides, both ways
    ties = (np.arange(8, dtype=np.uint32) << 16 | 0x8000 | 0x3F800000).view(np.float32)
    x = np.concatenate([x, ties, -ties, np.float32([0.0, -0.0, 1.0])])
    low = put(np.zeros(len(x)), np.uint16)
    launch(epi.to_bf16, len(x), put(x).view(np.uint32), low, len(x))
    np.testing.assert_array_equal(from_bf16(low.copy_to_host()), bf16_reference(x))


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("with_low", [0, 1])
def test_bias_activation_and_its_bf16_copy(rng, act, with_low):
    rows, width = (7, 5) if SIM else (1031, 257)
    Z, b = rng.standard_normal((rows, width)), rng.standard_normal(width)
    d_Z = put(Z.reshape(-1))
    low = put(np.zeros(rows * width if with_low else 1), np.uint16)
    launch(epi.bias_activation, rows * width, d_Z, d_Z.view(np.uint32), put(b), width,
           rows * width, ACTIVATIONS[act], low, with_low)
    from reference import activate

    want = activate(Z.astype(np.float32).astype(np.float64) + b.astype(np.float32), act)
    got = d_Z.copy_to_host()
    close(got, want.reshape(-1), tol=1e-6)
    if with_low:
        np.testing.assert_array_equal(from_bf16(low.copy_to_host()), bf16_reference(got))


@pytest.mark.parametrize("act", ACTS)
def test_times_derivative_and_its_bf16_copy(rng, act):
    from reference import activate, derivative_from_output

    n = 61 if SIM else 300_007
    dA = rng.standard_normal(n).astype(np.float32)
    A = activate(rng.standard_normal(n), act).astype(np.float32)
    d_dA, low = put(dA), put(np.zeros(n), np.uint16)
    launch(epi.times_derivative, n, d_dA, d_dA.view(np.uint32), put(A), n, ACTIVATIONS[act],
           low, 1)
    got = d_dA.copy_to_host()
    close(got, dA.astype(np.float64) * derivative_from_output(A.astype(np.float64), act),
          tol=1e-6)
    np.testing.assert_array_equal(from_bf16(low.copy_to_host()), bf16_reference(got))


def test_gather_rows_builds_the_flat_batch(rng):
    n, features, rows = (13, 5, 9) if SIM else (10_007, 131, 4099)
    X = rng.standard_normal((n, features)).astype(np.float32)
    y = rng.integers(0, 7, n).astype(np.float32)
    idx = rng.integers(0, n, rows)
    batch = put(np.full(rows * (features + 1), np.nan))
    launch(epi.gather_rows, rows * (features + 1), put(X), put(y), put(idx, np.int64), batch,
           rows, features)
    got = batch.copy_to_host()
    np.testing.assert_array_equal(got[:rows * features].reshape(rows, features), X[idx])
    np.testing.assert_array_equal(got[rows * features:], y[idx])


def engine(model, precision="fp32", **kw):
    from hpctrain.cuda_engine import CudaEngine

    gpu = CudaEngine(model.spec(), "adam", lr=0.01, precision=precision, **kw)
    gpu.load(model.init_params(3))
    return gpu


def same_outcome(got, want):
    """(loss, correct) of two runs over the same rows. The loss total is a sum of blocks'
    atomic adds, whose order a GPU does not fix: equal to float32 rounding, not in bits;
    the gradient of the fused kernel likewise (one atomic per parameter and block)."""
    close(got[0], want[0], tol=1e-6)
    assert got[1] == want[1]


@pytest.mark.parametrize("fused", [None, False])
def test_held_rows_train_as_copied_batches(rng, fused):
    """Batches gathered on the GPU from held rows train as batches copied in (the batches
    themselves are the same bits: test_gather_rows_builds_the_flat_batch)."""
    from hpctrain.batches import RowIndices
    from hpctrain.model import MLP

    model = MLP(5, (6, 4), "tanh", "multiclass", 3)
    X = rng.standard_normal((23, 5)).astype(np.float32)
    y = rng.integers(0, 3, 23).astype(np.int32)
    held, copied = engine(model, fused=fused), engine(model, fused=fused)
    assert held.hold_rows(X, y)
    g1, g2 = np.zeros(model.n_params, np.float32), np.zeros(model.n_params, np.float32)
    for step in range(3):
        idx = rng.permutation(23)[:9 + step]
        same_outcome(held.loss_grad(RowIndices(idx), None, g1),
                     copied.loss_grad(X[idx], y[idx], g2))
        close(g1, g2, tol=1e-6)
        held.step(g1, 1 / len(idx), 0.01)
        copied.step(g2, 1 / len(idx), 0.01)
    close(held.params_host(), copied.params_host(), tol=1e-6)
    assert held.facts["rows_on_gpu"] and not copied.facts["rows_on_gpu"]


def test_pinned_batches_go_over_from_where_they_lie(rng):
    """Inputs in the engine's pinned host_buffer skip the staging copy: same bits."""
    from hpctrain.model import MLP

    model = MLP(7, (9,), "relu", "binary", 2)
    direct, staged = engine(model, fused=False), engine(model, fused=False)
    g1, g2 = np.zeros(model.n_params, np.float32), np.zeros(model.n_params, np.float32)
    batches = []
    for rows in (11, 11, 6):
        X = rng.standard_normal((rows, 7)).astype(np.float32)
        pinned = direct.host_buffer(X.size).reshape(X.shape)
        pinned[...] = X
        batches.append((pinned, X, rng.integers(0, 2, rows).astype(np.int32)))
    for k, (pinned, X, y) in enumerate(batches):
        if k + 1 < len(batches):          # named ahead, as the training loop does
            direct.prefetch(batches[k + 1][0], batches[k + 1][2])
            staged.prefetch(batches[k + 1][1], batches[k + 1][2])
        same_outcome(direct.loss_grad(pinned, y, g1), staged.loss_grad(X, y, g2))
        close(g1, g2, tol=1e-6)
        direct.step(g1, 1 / len(X), 0.01)
        staged.step(g2, 1 / len(X), 0.01)
    assert any(slot.source is batches[-1][0] for slot in direct.batches.slots)
    assert all(slot.source is None for slot in staged.batches.slots)
    close(direct.params_host(), staged.params_host(), tol=1e-6)


@pytest.mark.parametrize("fused", [None, False])
def test_a_gradient_kept_on_the_gpu_is_checked_there(rng, fused):
    """loss_grad(..., None): grad_finite counts the sum's non-finite entries on the GPU."""
    from hpctrain.model import MLP

    model = MLP(4, (5,), "relu", "binary", 2)
    gpu = engine(model, fused=fused)
    X = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.integers(0, 2, 6).astype(np.int32)
    gpu.loss_grad(X, y, None)
    assert gpu.grad_finite is True
    gpu.step(None, 1 / 6, 0.01)
    X[2, 1] = np.inf              # an infinite input: a non-finite weight gradient
    gpu.loss_grad(X, y, None)
    assert gpu.grad_finite is False
    gpu.loss_grad(X, y, np.zeros(model.n_params, np.float32))
    assert gpu.grad_finite is None          # a host gradient: the host checks it


def test_held_rows_refuse_an_index_outside_them(rng):
    from hpctrain.batches import RowIndices
    from hpctrain.model import MLP

    model = MLP(3, (4,), "relu", "binary", 2)
    gpu = engine(model)
    gpu.hold_rows(np.zeros((5, 3), np.float32), np.zeros(5, np.int32))
    with pytest.raises(IndexError, match="outside the 5 held rows"):
        gpu.loss_grad(RowIndices(np.array([0, 5])), None, np.zeros(model.n_params, np.float32))


# --- cuBLAS (a GPU with CuPy) -----------------------------------------------------------------

# relative error bound per precision, of a product against |A| |B| (float32 sums: ~1e-6;
# TF32 and bf16 keep 10 and 7 bits of the operands' mantissas)
TOLERANCE = {"fp32": 1e-5, "tf32": 2e-3, "bf16": 1.6e-2}


def operand(a, precision):
    """A product's operand on the GPU: float32, or its bf16 copy at bf16."""
    if precision != "bf16":
        return put(a)
    copy = put(np.zeros(a.size), np.uint16)
    launch(epi.to_bf16, a.size, put(a.reshape(-1)).view(np.uint32), copy, a.size)
    return copy


@needs_blas
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_cublas_products_in_row_major(rng, stream, precision, trans_a, trans_b):
    from hpctrain.kernels.cuda_blas import Blas

    blas = Blas(stream, precision)
    for m, k, n in [(11, 7, 5), (300, 517, 131), (1031, 129, 257)]:
        A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
        B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
        C0 = rng.standard_normal((m, n)).astype(np.float32)
        opA, opB = (A.T if trans_a else A), (B.T if trans_b else B)
        C = put(C0)
        blas.row_major(operand(A, precision), A.shape, trans_a, operand(B, precision),
                       B.shape, trans_b, C, accumulate=True)()
        stream.synchronize()
        a64, b64 = opA.astype(np.float64), opB.astype(np.float64)
        close_to_product(C.copy_to_host(), C0 + a64 @ b64, np.abs(a64) @ np.abs(b64) + np.abs(C0),
                         tol=TOLERANCE[precision])


@needs_blas
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("task,act", [("multiclass", "relu"), ("binary", "tanh"),
                                      ("regression", "sigmoid")])
def test_the_cublas_network_gradient_against_float64(rng, precision, task, act):
    from hpctrain.kernels.cuda_heads import STATS
    from hpctrain.kernels.cuda_network import DeviceNetwork

    widths = [129, 257, 65, 10 if task == "multiclass" else 1]
    shapes = list(zip(widths[:-1], widths[1:], strict=True))
    s = cuda.stream()
    net = DeviceNetwork(shapes, ACTIVATIONS[act], {"binary": 0, "multiclass": 1,
                                                    "regression": 2}[task], s, SM,
                        fused=False, products="blas", precision=precision)
    for rows in (1, 777):
        params, X, y = random_problem(rng, widths, task, rows)
        params *= 0.3
        n = len(params)
        grad = put(np.zeros(n + STATS))
        net.bind(put(params), grad)
        batch = put(np.concatenate([X.reshape(-1), y.astype(np.float32)]))
        net.loss_grad(batch, rows)
        s.synchronize()
        loss, _correct, want = loss_grad(widths, act, task, params, X, y)
        got = grad.copy_to_host()
        tol = {"fp32": 1e-4, "tf32": 5e-3, "bf16": 4e-2}[precision]
        close(got[:n], want, tol=tol)
        close(got[n], loss, tol=tol)


@needs_blas
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_the_cublas_engine_trains_like_the_cpu_engine(rng, precision):
    from hpctrain.engine import CpuEngine
    from hpctrain.model import MLP
    from hpctrain.optim import make_optimizer

    model = MLP(131, (257, 129), "relu", "multiclass", 10)
    cpu = CpuEngine(model, make_optimizer("adam", model.n_params, lr=0.01),
                    model.init_params(3))
    gpu = engine(model, precision, products="blas")
    assert gpu.facts["products"] == "blas" and not gpu.facts["fused_kernel"]
    n = model.n_params
    g_cpu, g_gpu = np.zeros(n, np.float32), np.zeros(n, np.float32)
    tol = {"fp32": 2e-5, "tf32": 3e-3, "bf16": 2e-2}[precision]
    for step in range(4):
        X = rng.standard_normal((500 + step, 131)).astype(np.float32)
        y = rng.integers(0, 10, len(X)).astype(np.int32)
        loss_cpu, _ = cpu.loss_grad(X, y, g_cpu)
        loss_gpu, _ = gpu.loss_grad(X, y, g_gpu)
        close(loss_gpu, loss_cpu, tol=tol)
        close(g_gpu, g_cpu, tol=tol * 10)
        cpu.step(g_cpu, 1 / len(X), 0.01)
        gpu.step(g_gpu, 1 / len(X), 0.01)
    if precision == "fp32":
        close(gpu.params_host(), cpu.params_host(), tol=1e-4)


@needs_blas
def test_held_rows_and_bf16_give_the_parameters_of_copied_batches(rng):
    """cuBLAS's products are deterministic and the bias gradients are products too: the
    parameters come out in the same bits (only the logged loss total uses atomics)."""
    from hpctrain.batches import RowIndices
    from hpctrain.model import MLP

    model = MLP(64, (256, 256), "relu", "multiclass", 10)
    X = rng.standard_normal((3000, 64)).astype(np.float32)
    y = rng.integers(0, 10, 3000).astype(np.int32)
    held, copied = engine(model, "bf16", fused=False), engine(model, "bf16", fused=False)
    assert held.hold_rows(X, y)
    for _ in range(3):
        idx = rng.permutation(3000)[:1024]
        same_outcome(held.loss_grad(RowIndices(idx), None, None),
                     copied.loss_grad(X[idx], y[idx], None))
        held.step(None, 1 / 1024, 0.01)
        copied.step(None, 1 / 1024, 0.01)
    np.testing.assert_array_equal(held.params_host(), copied.params_host())

