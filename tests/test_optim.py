"""Fused optimizer steps against updates computed by hand in float64, and their state."""

import numpy as np
import pytest
from test_kernels_reference import assert_close32, fresh_rng

from hpctrain.errors import InputError
from hpctrain.optim import make_optimizer

N = 37  # not a multiple of any vector width, so the loops' tails run too


def buffers(rng, n=N):
    params = rng.standard_normal(n).astype(np.float32)
    grads = [(50 * rng.standard_normal(n)).astype(np.float32) for _ in range(3)]
    return params, grads


def test_sgd_with_momentum_and_weight_decay_matches_hand_computation():
    rng = fresh_rng()
    params, grads = buffers(rng)
    lr, mu, wd = 0.1, 0.9, 0.01
    opt = make_optimizer("sgd", N, lr=lr, momentum=mu, weight_decay=wd)
    theta, v = params.astype(np.float64), np.zeros(N)
    for t, (g_sum, count, step_lr) in enumerate(zip(grads, (50, 7, 1), (lr, 0.05, 0.2),
                                                    strict=True), 1):
        opt.step(params, g_sum, 1.0 / count, step_lr)
        g = g_sum.astype(np.float64) / count
        v = mu * v + g
        theta = theta - step_lr * v - step_lr * wd * theta
        assert_close32(params, theta, f"step {t}", rel=1e-5)
        assert opt.state_dict()["step"] == t
    assert_close32(opt.state_dict()["buffers"]["velocity"], v, "velocity", rel=1e-5)


def test_plain_sgd_keeps_no_state():
    rng = fresh_rng()
    params, grads = buffers(rng)
    opt = make_optimizer("sgd", N, lr=0.5, weight_decay=0.1)
    expected = params.astype(np.float64)
    opt.step(params, grads[0], 0.25, 0.5)
    expected = expected - 0.5 * grads[0].astype(np.float64) * 0.25 - 0.5 * 0.1 * expected
    assert_close32(params, expected, "plain sgd", rel=1e-6)
    assert opt.state_dict() == {"name": "sgd", "step": 1, "buffers": {}}


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_adam_over_three_steps_matches_hand_computation(weight_decay):
    rng = fresh_rng()
    params, grads = buffers(rng)
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-6
    opt = make_optimizer("adam", N, lr=lr, beta1=b1, beta2=b2, eps=eps,
                         weight_decay=weight_decay)
    theta, m, v = params.astype(np.float64), np.zeros(N), np.zeros(N)
    for t, g_sum in enumerate(grads, 1):
        opt.step(params, g_sum, 1.0 / 3, lr)
        g = g_sum.astype(np.float64) / 3
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps) - lr * weight_decay * theta
        assert_close32(params, theta, f"step {t}", rel=1e-5)
    state = opt.state_dict()
    assert state["step"] == 3
    assert_close32(state["buffers"]["m"], m, "m", rel=1e-5)
    assert_close32(state["buffers"]["v"], v, "v", rel=1e-5)


def test_adam_scalars_from_python_are_the_ones_the_kernel_uses():
    """The CUDA update takes adam_scalars' values from Python: a float32 NumPy replay of
    the step with them must give the CPU kernel's parameters bit for bit."""
    from hpctrain.kernels.optim import adam_scalars

    rng = fresh_rng()
    params, grads = buffers(rng)
    lr, b1, b2, eps, wd, scale = 3e-3, 0.85, 0.995, 1e-7, 0.02, 1.0 / 3
    opt = make_optimizer("adam", N, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
    theta, m, v = params.copy(), np.zeros(N, np.float32), np.zeros(N, np.float32)
    f32 = np.float32
    for t, g_sum in enumerate(grads, 1):
        opt.step(params, g_sum, scale, lr)
        step, inv_root_bc2, b1_, b2_, one_b1, one_b2, e = map(f32, adam_scalars(lr, b1, b2,
                                                                                eps, t))
        g = g_sum * f32(scale)
        m = b1_ * m + one_b1 * g
        v = b2_ * v + one_b2 * (g * g)
        theta = theta - step * m / (np.sqrt(v) * inv_root_bc2 + e) - f32(lr * wd) * theta
        assert theta.dtype == np.float32
        assert np.array_equal(theta.view(np.uint32), params.view(np.uint32)), f"step {t}"
    assert np.array_equal(opt.state_dict()["buffers"]["v"], v)


def test_adam_first_step_moves_each_parameter_by_about_lr():
    """A property of Adam, independent of the formula above: |step 1| = lr * |g| / (|g| + eps)."""
    params = np.zeros(4, np.float32)
    opt = make_optimizer("adam", 4, lr=1e-3)
    opt.step(params, np.array([3.0, -0.5, 1e-3, 0.0], np.float32), 1.0, 1e-3)
    np.testing.assert_allclose(params, [-1e-3, 1e-3, -1e-3 * 1e-3 / (1e-3 + 1e-8), 0],
                               rtol=1e-5)


@pytest.mark.parametrize("name, settings", [("sgd", {"momentum": 0.9}), ("adam", {})])
def test_a_restored_state_continues_bit_for_bit(name, settings):
    rng = fresh_rng()
    params, grads = buffers(rng)
    first = make_optimizer(name, N, lr=0.01, **settings)
    for g in grads[:2]:
        first.step(params, g, 0.5, 0.01)
    saved, saved_params = first.state_dict(), params.copy()
    first.step(params, grads[2], 0.5, 0.01)

    second = make_optimizer(name, N, lr=0.01, **settings)
    second.load_state_dict(saved)
    second.step(saved_params, grads[2], 0.5, 0.01)
    assert np.array_equal(params, saved_params)
    assert second.state_dict()["step"] == 3


def test_state_dict_is_a_copy():
    opt = make_optimizer("adam", 3, lr=0.1)
    state = opt.state_dict()
    opt.step(np.zeros(3, np.float32), np.ones(3, np.float32), 1.0, 0.1)
    assert np.all(state["buffers"]["m"] == 0) and state["step"] == 0


@pytest.mark.parametrize("state, message", [
    ({"name": "sgd", "step": 1, "buffers": {}}, "state is for 'sgd', not 'adam'"),
    ({"name": "adam", "step": -1, "buffers": {}}, "bad step count"),
    ({"name": "adam", "step": 1, "buffers": {"m": np.zeros(5)}}, "needs buffers"),
    ({"name": "adam", "step": 1, "buffers": {"m": np.zeros(4), "v": np.zeros(5)}},
     "buffer 'm' has shape"),
    ("not a dict", "state is for"),
])
def test_a_state_from_another_optimizer_or_model_is_refused(state, message):
    opt = make_optimizer("adam", 5, lr=0.1)
    with pytest.raises(InputError, match=message):
        opt.load_state_dict(state)
    assert opt.state_dict()["step"] == 0  # nothing taken over


@pytest.mark.parametrize("args, message", [
    (("adagrad", 3, 0.1), "unknown optimizer 'adagrad'"),
    (("adam", 3, 0.0), "learning rate must be in"),
    (("sgd", 3, -1e-3), "learning rate must be in"),
    (("sgd", 3, float("nan")), "learning rate must be in"),
    (("sgd", 3, "fast"), "learning rate must be a number"),
    (("sgd", -1, 0.1), "parameter count"),
])
def test_bad_optimizer_settings_are_input_errors(args, message):
    with pytest.raises(InputError, match=message):
        make_optimizer(*args)


@pytest.mark.parametrize("settings, message", [
    ({"momentum": -0.1}, "momentum"), ({"momentum": 1.0}, "momentum"),
    ({"weight_decay": -1.0}, "weight decay"), ({"beta1": 1.0}, "beta1"),
    ({"beta2": -0.5}, "beta2"), ({"eps": 0.0}, "eps"),
])
def test_out_of_range_hyperparameters_are_input_errors(settings, message):
    name = "sgd" if "momentum" in settings else "adam"
    with pytest.raises(InputError, match=message):
        make_optimizer(name, 3, 0.1, **settings)


def test_buffers_of_the_wrong_size_or_type_are_refused():
    opt = make_optimizer("adam", 4, lr=0.1)
    with pytest.raises(ValueError, match="parameter buffer"):
        opt.step(np.zeros(5, np.float32), np.zeros(4, np.float32), 1.0, 0.1)
    with pytest.raises(ValueError, match="gradient buffer"):
        opt.step(np.zeros(4, np.float32), np.zeros(4, np.float64), 1.0, 0.1)


@pytest.mark.parametrize("name,settings", [("adam", {}), ("sgd", {"momentum": 0.9}),
                                           ("sgd", {})])
def test_compiling_the_kernel_leaves_the_state_and_the_next_step_as_they_were(name, settings):
    rng = fresh_rng()
    params, grads = buffers(rng)
    plain, compiled = (make_optimizer(name, N, lr=0.1, **settings) for _ in range(2))
    theirs = params.copy()
    plain.step(params, grads[0], 0.5)
    compiled.step(theirs, grads[0], 0.5)
    before = compiled.state_dict()
    compiled.compile_kernel()
    after = compiled.state_dict()
    assert after["step"] == before["step"] == 1
    for k in before["buffers"]:
        np.testing.assert_array_equal(after["buffers"][k], before["buffers"][k])
    plain.step(params, grads[1], 0.5)
    compiled.step(theirs, grads[1], 0.5)
    np.testing.assert_array_equal(theirs, params)
