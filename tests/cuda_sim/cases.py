"""The CUDA kernels and engine against a float64 reference and the CPU path.

Run by tests/test_cuda.py in a subprocess: under Numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1, which must be set before numba.cuda is first imported, hence the
separate process) on tiny shapes, and, where a GPU is present, on the GPU itself with
larger odd shapes and the production tile shapes. Not collected by the main test run
(the file name does not start with test_).
"""

import sys

import numpy as np
import pytest
from hpctrain.kernels import ACTIVATIONS, TASKS
from hpctrain.kernels.cuda_shim import cuda, simulated
from reference import close, close_to_product, layer_views, loss_grad, n_params, random_problem

from hpctrain.errors import InputError

SIM = simulated()


def lock_simulator_shared_arrays():
    """numba-cuda 0.30's simulator finds a block's shared array by the calling line with an
    unlocked get-then-set, so two threads of one block can each make their own array and
    no longer share it: a flaky wrong result. Do the same lookup under a lock."""
    import threading

    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        assert alignment is None and shape != 0, "not used by hpctrain's kernels"
        if not isinstance(dtype, np.dtype):
            dtype = numpy_support.as_dtype(dtype) if hasattr(dtype, "bitwidth") else \
                np.dtype(dtype)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            found = self._allocations.get(caller)
            if found is None:
                found = self._allocations[caller] = np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array


if SIM:
    lock_simulator_shared_arrays()
    # The simulator runs each CUDA thread as a Python thread and polls them; a short
    # switch interval makes its barriers ten times faster.
    sys.setswitchinterval(1e-4)

from hpctrain.kernels import cuda_dense as dense  # noqa: E402
from hpctrain.kernels.cuda_heads import BAD_LABELS, CORRECT, LOSS, STATS, prepare_head  # noqa: E402
from hpctrain.kernels.cuda_network import DeviceNetwork  # noqa: E402
from hpctrain.kernels.cuda_optim import DeviceUpdate  # noqa: E402

ACTS = ("identity", "relu", "tanh", "sigmoid")
SM = 4 if SIM else 132
# (M, K, N) of the products: odd sizes that cross tile edges; the GPU takes larger ones.
PRODUCT_SIZES = [(11, 7, 5)] if SIM else [(11, 7, 5), (300, 517, 131), (1031, 129, 257)]
ROUTINE_SHAPES = [dense.TINY] if SIM else [dense.LARGE, dense.SMALL]


def put(a):
    return cuda.to_device(np.ascontiguousarray(a, dtype=np.float32))


def act_ref(Z, act):
    from reference import activate

    return activate(Z, act)


# --- the three products ---------------------------------------------------------------------

@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", ROUTINE_SHAPES, ids=str)
def test_forward_is_bias_plus_activation_of_the_product(rng, stream, act, shape):
    for M, K, N in PRODUCT_SIZES:
        A, W, b = (rng.standard_normal(s) for s in ((M, K), (K, N), N))
        Z = put(np.full((M, N), np.nan))           # poisoned: every element must be written
        dense.DenseLauncher(stream, SM, shape).forward(put(A), put(W), put(b), Z,
                                                       ACTIVATIONS[act])
        A, W, b = (v.astype(np.float32).astype(np.float64) for v in (A, W, b))
        # every activation's slope is at most 1: the product's error bound carries over
        close_to_product(Z.copy_to_host(), act_ref(A @ W + b, act),
                         np.abs(A) @ np.abs(W) + np.abs(b))


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", ROUTINE_SHAPES, ids=str)
def test_input_grads_fuse_the_activation_derivative(rng, stream, act, shape):
    from reference import derivative_from_output

    for M, K, N in PRODUCT_SIZES:
        dZ, W = rng.standard_normal((M, K)), rng.standard_normal((N, K))
        A_prev = act_ref(rng.standard_normal((M, N)), act)
        dA = put(np.full((M, N), np.nan))
        dense.DenseLauncher(stream, SM, shape).input_grads(put(dZ), put(W), put(A_prev), dA,
                                                           ACTIVATIONS[act])
        dZ, W = dZ.astype(np.float32).astype(np.float64), W.astype(np.float32).astype(np.float64)
        slope = derivative_from_output(A_prev.astype(np.float32).astype(np.float64), act)
        close_to_product(dA.copy_to_host(), (dZ @ W.T) * slope,
                         (np.abs(dZ) @ np.abs(W.T)) * np.abs(slope))


@pytest.mark.parametrize("min_slices", [16, 1], ids=["whole-batch", "split-batch"])
@pytest.mark.parametrize("shape", ROUTINE_SHAPES, ids=str)
def test_weight_grads_add_into_dW_and_sum_the_bias(rng, stream, min_slices, shape):
    sizes = [(19, 6, 5)] if SIM else [(19, 6, 5), (8193, 300, 10), (517, 1031, 129)]
    for batch, M, N in sizes:
        A, dZ = rng.standard_normal((batch, M)), rng.standard_normal((batch, N))
        before_W, before_b = rng.standard_normal((M, N)), rng.standard_normal(N)
        dW, db = put(before_W), put(before_b)
        launcher = dense.DenseLauncher(stream, SM, shape, min_slices=min_slices)
        launcher.weight_grads(put(A), put(dZ), dW, db)
        A, dZ = A.astype(np.float32).astype(np.float64), dZ.astype(np.float32).astype(np.float64)
        before_W = before_W.astype(np.float32).astype(np.float64)
        before_b = before_b.astype(np.float32).astype(np.float64)
        close_to_product(dW.copy_to_host(), before_W + A.T @ dZ,
                         np.abs(before_W) + np.abs(A.T) @ np.abs(dZ))
        close_to_product(db.copy_to_host(), before_b + dZ.sum(axis=0),
                         np.abs(before_b) + np.abs(dZ).sum(axis=0))


@pytest.mark.skipif(not SIM, reason="the GPU run covers the production shapes above")
def test_production_tile_shapes_in_the_simulator(rng, stream):
    """LARGE and SMALL once each on one small shape: 256 Python threads a block are slow."""
    M, K, N = 9, 10, 7
    A, W, b = rng.standard_normal((M, K)), rng.standard_normal((K, N)), rng.standard_normal(N)
    for shape in (dense.LARGE, dense.SMALL):
        launcher = dense.DenseLauncher(stream, SM, shape)
        Z = put(np.full((M, N), np.nan))
        launcher.forward(put(A), put(W), put(b), Z, ACTIVATIONS["relu"])
        close(Z.copy_to_host(), np.maximum(A @ W + b, 0))
    dW, db = put(np.zeros((K, N))), put(np.zeros(N))
    dense.DenseLauncher(stream, SM, dense.LARGE).weight_grads(put(A), put(Z.copy_to_host()),
                                                               dW, db)
    Zh = Z.copy_to_host().astype(np.float64)
    close(dW.copy_to_host(), A.T @ Zh)
    close(db.copy_to_host(), Zh.sum(axis=0))


# --- heads ------------------------------------------------------------------------------------

def labels_for(rng, task, rows, classes):
    if task == "binary":
        return rng.integers(0, 2, rows).astype(np.float32)
    if task == "multiclass":
        return rng.integers(0, classes, rows).astype(np.float32)
    return rng.standard_normal(rows).astype(np.float32)


@pytest.mark.parametrize("task", list(TASKS))
def test_head_loss_grad_and_totals(rng, stream, task):
    from reference import head

    rows = 37 if SIM else 1029
    outputs = 4 if task == "multiclass" else 1
    Z = rng.standard_normal((rows, outputs)) * 4
    Z[0] = 60.0                                   # far out on both sides: still finite
    Z[1] = -60.0
    y = labels_for(rng, task, rows, outputs)
    dZ = put(np.full(rows * outputs, np.nan))
    stats = put(np.zeros(5 + STATS))
    prepare_head(stream, put(Z.ravel()), put(y), dZ, rows, outputs, stats, 5, TASKS[task])()
    losses, correct, dZ_ref = head(Z.astype(np.float32).astype(np.float64), y, task)
    close(dZ.copy_to_host().reshape(rows, outputs), dZ_ref)
    got = stats.copy_to_host()
    assert np.all(got[:5] == 0)
    close(got[5 + LOSS], losses.sum(), tol=1e-5)
    assert got[5 + CORRECT] == correct.sum()
    assert got[5 + BAD_LABELS] == 0


@pytest.mark.parametrize("task,bad", [("binary", 2.0), ("binary", 0.5), ("multiclass", 3.0),
                                      ("multiclass", -1.0), ("multiclass", 1.5)])
def test_head_counts_impossible_labels(stream, task, bad):
    outputs = 3 if task == "multiclass" else 1
    y = np.array([0, bad, 1], dtype=np.float32)
    dZ = put(np.full(3 * outputs, np.nan))
    stats = put(np.zeros(STATS))
    prepare_head(stream, put(np.ones(3 * outputs)), put(y), dZ, 3, outputs, stats, 0,
                 TASKS[task])()
    got = stats.copy_to_host()
    assert got[BAD_LABELS] == 1
    assert np.isnan(got[LOSS])
    assert np.all(dZ.copy_to_host().reshape(3, outputs)[1] == 0)   # nothing read or written


# --- the whole network ------------------------------------------------------------------------

NETWORKS = [((5, 6, 4, 1), "binary"), ((5, 6, 4, 3), "multiclass"), ((3, 7, 1), "regression")]
if not SIM:
    NETWORKS += [((32, 64, 1), "binary"), ((61, 33, 17, 10), "multiclass")]


def network_gradient(rng, stream, widths, act, task, rows, fused, tile=None):
    params, X, y = random_problem(rng, widths, task, rows)
    shapes = list(zip(widths[:-1], widths[1:], strict=True))
    net = DeviceNetwork(shapes, ACTIVATIONS[act], TASKS[task], stream, SM, fused=fused,
                        tile=tile)
    assert net.uses_fused(rows) == bool(fused)
    grad = put(np.zeros(n_params(widths) + STATS))
    net.bind(put(params), grad)
    batch = put(np.concatenate([X.ravel(), y.astype(np.float32)]))
    net.loss_grad(batch, rows)
    got = grad.copy_to_host()
    return got, loss_grad(widths, act, task, params, X, y)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("widths,task", NETWORKS, ids=lambda v: str(v))
def test_fused_kernel_matches_float64(rng, stream, widths, task, act):
    rows = 13 if SIM else 257
    got, (loss, correct, grad) = network_gradient(rng, stream, widths, act, task, rows,
                                                fused=True, tile=4 if SIM else None)
    n = n_params(widths)
    close(got[:n], grad, tol=5e-5)
    close(got[n + LOSS], loss, tol=1e-5)
    assert got[n + CORRECT] == correct and got[n + BAD_LABELS] == 0


@pytest.mark.parametrize("widths,task,act", [(w, t, a) for (w, t), a in zip(
    NETWORKS, ("tanh", "relu", "sigmoid", "identity", "relu"), strict=False)], ids=str)
def test_layered_path_matches_float64(rng, stream, widths, task, act):
    rows = 11 if SIM else 1035
    got, (loss, correct, grad) = network_gradient(rng, stream, widths, act, task, rows,
                                                fused=False)
    n = n_params(widths)
    close(got[:n], grad, tol=5e-5)
    close(got[n + LOSS], loss, tol=1e-5)
    assert got[n + CORRECT] == correct and got[n + BAD_LABELS] == 0


def test_large_networks_take_the_layered_path(stream):
    net = DeviceNetwork([(1024, 1024), (1024, 1024), (1024, 10)], ACTIVATIONS["relu"],
                        TASKS["multiclass"], stream, SM)
    assert not net.uses_fused(512)
    small = DeviceNetwork([(32, 64), (64, 1)], ACTIVATIONS["relu"], TASKS["binary"], stream, SM)
    assert small.uses_fused(256)


# --- optimizers -------------------------------------------------------------------------------

OPTIMIZERS = [("sgd", dict(momentum=0.0, weight_decay=0.01)),
              ("sgd", dict(momentum=0.9, weight_decay=0.0)),
              ("adam", dict(weight_decay=0.0)), ("adam", dict(weight_decay=0.05))]


@pytest.mark.parametrize("name,settings", OPTIMIZERS, ids=str)
def test_update_kernels_follow_the_cpu_optimizer(rng, stream, name, settings):
    from hpctrain.optim import make_optimizer

    n = 301 if SIM else 100_003
    cpu = make_optimizer(name, n, lr=0.05, **settings)
    update = DeviceUpdate(name, stream, SM, momentum=settings.get("momentum", 0.0),
                          weight_decay=settings["weight_decay"])
    params = rng.standard_normal(n).astype(np.float32)
    d_params = put(params)
    d_state = put(np.zeros((len(cpu.buffers), n)))
    for t in range(1, 4):
        grad = (rng.standard_normal(n) * 7).astype(np.float32)
        d_grad = put(np.concatenate([grad, 5.0 + np.arange(STATS)]))     # STATS slots too
        cpu.step(params, grad, 1 / 7, 0.05 * t)
        update.apply(d_params, d_grad, d_state, 1 / 7, 0.05 * t, t)
        assert np.all(d_grad.copy_to_host() == 0), "the gradient must be left zeroed"
        close(d_params.copy_to_host(), params, tol=2e-6)
    for row, buf in zip(d_state.copy_to_host(), cpu.buffers.values(), strict=True):
        close(row, buf, tol=2e-6)


# --- the engine -------------------------------------------------------------------------------

def engine_pair(name="adam", task="binary", hidden=(6,), act="relu", fused=None, **settings):
    from hpctrain.cuda_engine import CudaEngine
    from hpctrain.engine import CpuEngine
    from hpctrain.model import MLP
    from hpctrain.optim import make_optimizer

    classes = {"binary": 2, "multiclass": 3, "regression": 0}[task]
    model = MLP(5, hidden, act, task, classes)
    params = model.init_params(7)
    cpu = CpuEngine(model, make_optimizer(name, model.n_params, lr=0.01, **settings),
                    params.copy())
    gpu = CudaEngine(model.spec(), name, lr=0.01, fused=fused, **settings)
    gpu.load(params)
    return model, cpu, gpu


def batch_for(rng, model, rows):
    X = rng.standard_normal((rows, model.features)).astype(np.float32)
    if model.task == "regression":
        return X, rng.standard_normal(rows).astype(np.float32)
    return X, rng.integers(0, max(model.classes, 2), rows).astype(np.int32)


@pytest.mark.parametrize("name,task,fused,mode", [
    ("adam", "binary", None, "host"), ("sgd", "multiclass", False, "host"),
    ("adam", "regression", None, "device"), ("adam", "multiclass", False, "device"),
    ("sgd", "binary", None, "pinned"), ("adam", "multiclass", False, "pinned")], ids=str)
def test_engine_trains_like_the_cpu_engine(rng, name, task, fused, mode):
    """Same steps, same data: same losses, gradients and parameters to float32 rounding.
    host: the gradient comes to a host buffer (for the allreduce); pinned: that buffer is
    the engine's pinned memory (copied directly); device: it never leaves the GPU."""
    settings = dict(momentum=0.9, weight_decay=0.01) if name == "sgd" else {}
    model, cpu, gpu = engine_pair(name, task, (6, 4), "tanh", fused, **settings)
    n = model.n_params
    g_cpu = np.zeros(n, np.float32)
    g_gpu = gpu.host_buffer(n + 4)[1:n + 1] if mode == "pinned" else np.zeros(n, np.float32)
    for step in range(3):
        X, y = batch_for(rng, model, 9 + step)
        if step == 1:
            gpu.prefetch(X, y)
        loss_cpu, correct_cpu = cpu.loss_grad(X, y, g_cpu)
        if mode == "device":
            loss_gpu, correct_gpu = gpu.loss_grad(X, y, None)
        else:
            loss_gpu, correct_gpu = gpu.loss_grad(X, y, g_gpu)
            close(g_gpu, g_cpu, tol=5e-5)
        close(loss_gpu, loss_cpu, tol=1e-5)
        assert correct_gpu == correct_cpu
        cpu.step(g_cpu, 1 / len(X), 0.01)
        gpu.step(None if mode == "device" else g_gpu, 1 / len(X), 0.01)
        close(gpu.params_host(), cpu.params_host(), tol=1e-5)
    state_gpu, state_cpu = gpu.optimizer_state(), cpu.optimizer_state()
    assert state_gpu["name"] == state_cpu["name"] and state_gpu["step"] == state_cpu["step"] == 3
    assert set(state_gpu["buffers"]) == set(state_cpu["buffers"])
    for k, v in state_cpu["buffers"].items():
        close(state_gpu["buffers"][k], v, tol=1e-5)
    if mode == "pinned":
        assert gpu._direct(g_gpu) is not None           # it did take the direct path


def test_checkpoints_move_between_cpu_and_gpu(rng):
    model, cpu, gpu = engine_pair("adam")
    n = model.n_params
    grad = np.zeros(n, np.float32)
    for _ in range(2):
        X, y = batch_for(rng, model, 7)
        cpu.loss_grad(X, y, grad)
        cpu.step(grad, 1 / 7, 0.01)
    gpu.load(cpu.params_host(), cpu.optimizer_state())      # CPU checkpoint -> GPU
    X, y = batch_for(rng, model, 7)
    cpu.loss_grad(X, y, grad)
    cpu.step(grad, 1 / 7, 0.01)
    g = np.zeros(n, np.float32)
    gpu.loss_grad(X, y, g)
    gpu.step(g, 1 / 7, 0.01)
    close(gpu.params_host(), cpu.params_host(), tol=1e-5)
    _, cpu2, _ = engine_pair("adam")
    cpu2.load(gpu.params_host(), gpu.optimizer_state())     # GPU checkpoint -> CPU
    assert cpu2.optimizer_state()["step"] == 3
    for k, v in cpu.optimizer_state()["buffers"].items():
        close(cpu2.optimizer_state()["buffers"][k], v, tol=1e-5)


def test_engine_edge_cases(rng):
    model, cpu, gpu = engine_pair("sgd", "multiclass", momentum=0.5)
    n = model.n_params
    g = np.full(n, 3.0, np.float32)
    assert gpu.loss_grad(np.zeros((0, 5), np.float32), np.zeros(0, np.int32), g) == (0.0, 0)
    assert np.all(g == 0)
    # Twice without a step in between (the kernels' warm-up does that): no stale sums.
    X, y = batch_for(rng, model, 6)
    first, second = np.zeros(n, np.float32), np.zeros(n, np.float32)
    loss1, _ = gpu.loss_grad(X[:2], y[:2], first)
    loss2, _ = gpu.loss_grad(X, y, second)
    ref = np.zeros(n, np.float32)
    loss_ref, _ = cpu.loss_grad(X, y, ref)
    close(second, ref, tol=5e-5)
    close(loss2, loss_ref, tol=1e-5)
    bad = y.copy()
    bad[3] = 3
    with pytest.raises(InputError, match="class label outside"):
        gpu.loss_grad(X, bad, second)
    with pytest.raises(InputError, match="features"):
        gpu.loss_grad(X[:, :4], y, second)
    with pytest.raises(InputError, match="optimizer state is for"):
        gpu.load(cpu.params_host(), {"name": "adam", "step": 1, "buffers": {}})
    with pytest.raises(InputError, match="parameters"):
        gpu.load(np.zeros(n + 1, np.float32))


def test_layout_views_match_the_cpu_model():
    """The device views cut the flat buffer exactly where hpctrain.model.MLP.views does."""
    from hpctrain.model import MLP

    model = MLP(5, (6, 4), "relu", "multiclass", 3)
    flat = np.arange(model.n_params, dtype=np.float32)
    net = DeviceNetwork(model.layer_shapes, 1, 1, cuda.stream(), SM)
    net.bind(put(flat), put(np.zeros(model.n_params + STATS)))
    for (W, b), (dW, db), (rW, rb) in zip(model.views(flat), net.param_views,
                                          layer_views([5, 6, 4, 3], flat), strict=True):
        assert np.array_equal(dW.copy_to_host(), W) and np.array_equal(W, rW)
        assert np.array_equal(db.copy_to_host(), b) and np.array_equal(b, rb)


@pytest.mark.parametrize("ranges", [False, True], ids=["whole", "in-row-ranges"])
@pytest.mark.parametrize("order", ["before-step", "after-step"])
def test_prefetched_batches_are_the_ones_used(rng, monkeypatch, ranges, order):
    """Prefetch the next batch before or after the current step; a prefetch nobody asks
    for is dropped; whatever the order, each step computes on its own batch."""
    from hpctrain.kernels import cuda_staging

    if ranges:
        monkeypatch.setattr(cuda_staging, "RANGE_BYTES", 64)     # 3-4 rows a range
    model, cpu, gpu = engine_pair("adam", "binary")
    n = model.n_params
    batches = [batch_for(rng, model, 8 + k) for k in range(5)]
    g_cpu, g_gpu = np.zeros(n, np.float32), np.zeros(n, np.float32)

    def prefetch_next(k):
        if k == 1:
            gpu.prefetch(*batch_for(rng, model, 5))      # never asked for
        if k + 1 < len(batches):
            gpu.prefetch(*batches[k + 1])

    for k, (X, y) in enumerate(batches):
        if order == "before-step":
            prefetch_next(k)
        loss_gpu, _ = gpu.loss_grad(X, y, g_gpu)
        if order == "after-step":
            prefetch_next(k)
        loss_cpu, _ = cpu.loss_grad(X, y, g_cpu)
        close(g_gpu, g_cpu, tol=5e-5)
        close(loss_gpu, loss_cpu, tol=1e-5)
        cpu.step(g_cpu, 1 / len(X), 0.01)
        gpu.step(g_gpu, 1 / len(X), 0.01)
    close(gpu.params_host(), cpu.params_host(), tol=1e-5)


def test_prepared_launches_take_new_scalars(stream):
    from hpctrain.kernels.cuda_launch import PreparedLaunch
    from hpctrain.kernels.cuda_optim import sgd_update

    params, grad = put(np.ones(40)), put(np.full(43, 2.0))
    f32 = np.float32
    launch = PreparedLaunch(sgd_update, 2, 32, stream, (params, grad, f32(1), f32(0.5), f32(0)))
    launch()                                           # p = 1 - 0.5 * 2 = 0, grad zeroed
    assert np.all(params.copy_to_host() == 0) and np.all(grad.copy_to_host() == 0)
    grad.copy_to_device(np.full(43, 4.0, np.float32))
    params.copy_to_device(np.full(40, 3.0, np.float32))
    launch(f32(0.5), f32(0.25), f32(0.1))              # p = 3 - 0.25 * 2 - 0.1 * 3
    assert np.allclose(params.copy_to_host(), 2.2, rtol=1e-6)


def sgd_launch_and_copy(stream):
    """A PreparedLaunch of the SGD kernel (p = 1 - 0.5 * 2 = 0) and a Copy of its result."""
    from hpctrain.kernels.cuda_launch import Copy, PreparedLaunch
    from hpctrain.kernels.cuda_optim import sgd_update

    params, grad = put(np.ones(40)), put(np.full(43, 2.0))
    f32 = np.float32
    launch = PreparedLaunch(sgd_update, 2, 32, stream, (params, grad, f32(1), f32(0.5), f32(0)))
    host = cuda.pinned_array(40, dtype=np.float32)
    host[...] = 7
    return launch, Copy(params, host, "to_host", stream), host


def fallback_warnings(caught):
    return [str(w.message) for w in caught if "cannot prepare" in str(w.message)]


def test_launches_and_copies_prepare_without_warnings(stream):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        launch, copy, host = sgd_launch_and_copy(stream)
        launch()
        copy()
        stream.synchronize()
    assert fallback_warnings(caught) == []
    assert launch.fast == copy.fast == (not SIM)     # the simulator has nothing to prepare
    assert np.all(host == 0)


def test_a_failed_preparation_warns_once_and_still_computes(stream, monkeypatch):
    """Force the fallback (as another numba-cuda version would): one warning per kind and
    process, however many launches and copies are made, and the same results."""
    import warnings

    from hpctrain.kernels import cuda_launch

    def refuse(*args):
        raise TypeError("internals differ")

    monkeypatch.setattr(cuda_launch, "simulated", lambda: False)
    monkeypatch.setattr(cuda_launch, "_warned", set())
    monkeypatch.setattr(cuda_launch.PreparedLaunch, "_prepare", refuse)
    monkeypatch.setattr(cuda_launch.Copy, "_prepare", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = [sgd_launch_and_copy(stream) for _ in range(3)]
        for launch, copy, _ in made:
            launch()
            copy()
        stream.synchronize()
    found = fallback_warnings(caught)
    assert len(found) == 2, found
    assert "kernel launches" in found[0] and "TypeError: internals differ" in found[0]
    assert "copies" in found[1] and "TypeError: internals differ" in found[1]
    assert all(w.category is RuntimeWarning for w in caught if "cannot prepare" in str(w.message))
    for launch, copy, host in made:
        assert not launch.fast and not copy.fast
        assert np.all(host == 0)
