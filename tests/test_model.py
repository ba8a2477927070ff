"""The MLP: one compiled forward/backward over the flat buffer, against float64 NumPy and
finite differences, for every activation and head; layout, initialisation, validation."""

import numpy as np
import pytest
from test_kernels_reference import (
    ACTIVATION_NAMES,
    TASK_NAMES,
    assert_close32,
    central_differences,
    fresh_rng,
    network_logits,
    network_loss,
    network_loss_grad,
    random_labels,
    unflatten,
)

from hpctrain import model as model_module
from hpctrain.errors import InputError
from hpctrain.model import MLP

# (batch, features, hidden): one row, one feature, no hidden layer, sizes off the SIMD width
SHAPES = [(1, 1, (1,)), (1, 6, (3,)), (4, 1, (5, 2)), (13, 7, (9,)), (29, 5, ()),
          (37, 11, (10, 3))]
CLASSES = 3


def build(task, features, hidden, activation):
    return MLP(features, hidden, activation, task, CLASSES if task == "multiclass" else 2)


def random_batch(rng, m, n):
    X = rng.standard_normal((n, m.features)).astype(np.float32)
    return X, random_labels(rng, m.task, n, CLASSES)


def randomized_params(rng, m):
    """Initial weights plus random biases, so bias gradients see nonzero biases too."""
    params = m.init_params(int(rng.integers(1 << 31)))
    for _, b in m.views(params):
        b[:] = 0.3 * rng.standard_normal(b.shape)
    return params


@pytest.mark.parametrize("n, features, hidden", SHAPES)
@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_loss_grad_matches_backprop_and_finite_differences(activation, task, n, features,
                                                            hidden):
    rng = fresh_rng()
    m = build(task, features, hidden, activation)
    params = randomized_params(rng, m)
    X, y = random_batch(rng, m, n)
    grad = np.full(m.n_params, np.nan, np.float32)
    loss, correct = m.loss_grad(params, X, y, grad)

    args = (m.layer_shapes, X.astype(np.float64), y.astype(np.float64), activation, task)
    ref_loss, ref_correct, ref_grad = network_loss_grad(params.astype(np.float64), *args)
    numeric = central_differences(lambda p: network_loss(p, *args), params)
    assert loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-5)
    assert correct == ref_correct
    assert_close32(grad, ref_grad, "against backprop")
    assert_close32(grad, numeric, "against finite differences")


@pytest.mark.parametrize("task", TASK_NAMES)
def test_a_batch_gradient_is_the_sum_of_its_parts(task):
    """What the allreduce relies on: sums over row blocks add up to the whole batch's."""
    rng = fresh_rng()
    m = build(task, 5, (7,), "tanh")
    params = randomized_params(rng, m)
    X, y = random_batch(rng, m, 23)
    whole, first, second = (np.empty(m.n_params, np.float32) for _ in range(3))
    loss, correct = m.loss_grad(params, X, y, whole)
    l1, c1 = m.loss_grad(params, X[:10], y[:10], first)
    l2, c2 = m.loss_grad(params, X[10:], y[10:], second)
    assert loss == pytest.approx(l1 + l2, rel=1e-6) and correct == c1 + c2
    assert_close32(whole, first.astype(np.float64) + second, "sum of parts", rel=1e-5)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_an_empty_batch_gives_a_zero_gradient(task):
    m = build(task, 4, (3,), "relu")
    params = m.init_params(0)
    grad = np.full(m.n_params, np.nan, np.float32)
    X = np.empty((0, 4), np.float32)
    y = random_labels(np.random.default_rng(0), task, 0, CLASSES)
    assert m.loss_grad(params, X, y, grad) == (0.0, 0)
    assert np.all(grad == 0)
    assert m.evaluate(params, X, y) == (0.0, 0)
    expected_shape = (0, CLASSES) if task == "multiclass" else (0,)
    assert m.predict(params, X).shape == expected_shape


def test_the_gradient_may_be_a_view_into_a_larger_buffer():
    """The training loop sends gradient, count and loss sum in one buffer."""
    rng = fresh_rng()
    m = build("binary", 3, (4,), "relu")
    params = m.init_params(1)
    X, y = random_batch(rng, m, 9)
    fused = np.full(m.n_params + 2, -5.0, np.float32)
    alone = np.empty(m.n_params, np.float32)
    m.loss_grad(params, X, y, fused[:m.n_params])
    m.loss_grad(params, X, y, alone)
    assert np.array_equal(fused[:m.n_params], alone)
    assert np.all(fused[m.n_params:] == -5.0)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_predict_and_evaluate_match_the_reference(task, monkeypatch):
    rng = fresh_rng()
    m = build(task, 6, (8, 5), "sigmoid")
    params = randomized_params(rng, m)
    X, y = random_batch(rng, m, 301)
    logits = network_logits(unflatten(params, m.layer_shapes), X, "sigmoid")
    if task == "binary":
        expected = 1 / (1 + np.exp(-logits[:, 0]))
    elif task == "multiclass":
        expected = np.exp(logits - logits.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
    else:
        expected = logits[:, 0]
    ref_loss, ref_correct, _ = network_loss_grad(
        params.astype(np.float64), m.layer_shapes, X, y.astype(np.float64), "sigmoid", task)
    # a small chunk bound makes evaluation and prediction go through several chunks
    monkeypatch.setattr(model_module, "_EVAL_CHUNK_FLOATS", 7 * 14)
    assert_close32(m.predict(params, X), expected, "predict", rel=1e-5)
    loss, correct = m.evaluate(params, X, y)
    assert loss == pytest.approx(ref_loss, rel=1e-5) and correct == ref_correct


def test_inputs_of_other_dtypes_and_orders_are_converted():
    rng = fresh_rng()
    m = build("multiclass", 4, (5,), "relu")
    params = m.init_params(3)
    X = rng.standard_normal((4, 8))[:, ::2]  # float64, strided
    y = np.array([0, 2, 1, 2], dtype=np.int64)
    readonly = np.ascontiguousarray(X, np.float32)
    readonly.flags.writeable = False
    g1, g2 = np.empty(m.n_params, np.float32), np.empty(m.n_params, np.float32)
    assert m.loss_grad(params, X, y, g1)[1] == m.loss_grad(params, readonly, y, g2)[1]
    assert np.array_equal(g1, g2)


def test_layout_is_w_row_major_then_b_layer_by_layer():
    m = MLP(3, (4, 2), "tanh", "multiclass", 5)
    assert m.layer_shapes == [(3, 4), (4, 2), (2, 5)]
    assert m.n_params == 3 * 4 + 4 + 4 * 2 + 2 + 2 * 5 + 5
    flat = np.arange(m.n_params, dtype=np.float32)
    (W0, b0), (W1, b1), (W2, b2) = m.views(flat)
    assert W0[1, 2] == 1 * 4 + 2 and b0[0] == 12 and W1[0, 0] == 16 and b2[-1] == m.n_params - 1
    W1[:] = -1
    assert np.all(flat[16:24] == -1)  # views write the buffer


def test_initialisation_is_seeded_he_for_relu_glorot_otherwise():
    relu = MLP(400, (300,), "relu", "multiclass", 200)
    a, b, c = relu.init_params(7), relu.init_params(7), relu.init_params(8)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and a.dtype == np.float32
    (W0, b0), (W1, b1) = relu.views(a)
    assert np.all(b0 == 0) and np.all(b1 == 0)
    assert W0.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)  # He normal
    limit = np.sqrt(6 / (300 + 200))  # the linear output layer: Glorot uniform
    assert np.abs(W1).max() <= limit and np.abs(W1).max() > 0.95 * limit
    (T0, _), _ = MLP(400, (300,), "tanh", "binary").views(
        MLP(400, (300,), "tanh", "binary").init_params(7))
    assert np.abs(T0).max() <= np.sqrt(6 / 700) and T0.std() == pytest.approx(
        np.sqrt(6 / 700) / np.sqrt(3), rel=0.02)


def test_spec_round_trips():
    for m in (MLP(5), MLP(3, (4, 6), "tanh", "multiclass", 7), MLP(2, (), "identity",
                                                                  "regression", 0)):
        again = MLP.from_spec(m.spec())
        assert again.spec() == m.spec() and again.n_params == m.n_params
    assert MLP(5).spec() == {"features": 5, "hidden": [64], "activation": "relu",
                             "task": "binary", "classes": 2}


@pytest.mark.parametrize("kwargs, message", [
    ({"activation": "gelu"}, "unknown activation 'gelu'"),
    ({"task": "ranking"}, "unknown task 'ranking'"),
    ({"activation": ["relu"]}, "unknown activation"),
    ({"task": None}, "unknown task"),
    ({"features": 0}, "feature count must be a positive integer"),
    ({"features": 2.5}, "feature count must be a positive integer"),
    ({"hidden": (8, 0)}, "hidden layer size must be a positive integer"),
    ({"hidden": -3}, "hidden layer size must be a positive integer"),
    ({"hidden": "64,64"}, "hidden layer sizes must be a list"),
    ({"task": "binary", "classes": 3}, "binary task has 2 classes"),
    ({"task": "multiclass", "classes": 1}, "multiclass task needs at least 2 classes"),
])
def test_bad_model_descriptions_are_input_errors(kwargs, message):
    args = {"features": 4, "hidden": (8,), "activation": "relu", "task": "binary",
            "classes": 2, **kwargs}
    with pytest.raises(InputError, match=message):
        MLP(**args)


def test_a_spec_with_missing_keys_is_an_input_error():
    with pytest.raises(InputError, match="needs the keys"):
        MLP.from_spec({"features": 3, "hidden": [2]})


@pytest.mark.parametrize("task, labels", [("binary", [0, 1, 2]), ("multiclass", [0, 3, 1]),
                                          ("multiclass", [0, 1.5, 1])])
def test_bad_labels_are_input_errors(task, labels):
    m = build(task, 2, (3,), "relu")
    params, grad = m.init_params(0), np.empty(m.n_params, np.float32)
    X = np.zeros((3, 2), np.float32)
    with pytest.raises(InputError, match="label"):
        m.loss_grad(params, X, np.array(labels), grad)
    with pytest.raises(InputError, match="label"):
        m.evaluate(params, X, np.array(labels))


def test_inputs_of_the_wrong_shape_are_input_errors():
    m = build("binary", 3, (2,), "relu")
    params, grad = m.init_params(0), np.empty(m.n_params, np.float32)
    with pytest.raises(InputError, match="rows of 3 features"):
        m.loss_grad(params, np.zeros((4, 5), np.float32), np.zeros(4, np.int32), grad)
    with pytest.raises(InputError, match="expected 4 labels"):
        m.loss_grad(params, np.zeros((4, 3), np.float32), np.zeros(5, np.int32), grad)
    with pytest.raises(ValueError, match="gradient buffer"):
        m.loss_grad(params, np.zeros((4, 3), np.float32), np.zeros(4, np.int32),
                    np.empty(m.n_params, np.float64))


def test_loss_grad_parts_compile_the_pieces_and_leave_an_empty_batch_out():
    model = MLP(features=3, hidden=(4,), task="binary")
    params = model.init_params(0)
    grad = np.zeros_like(params)
    empty = model.loss_grad_parts(params, np.zeros((0, 3), np.float32), np.zeros(0, np.int32),
                                  grad)
    assert empty == []  # an empty batch never reaches the products (loss_grad returns first)
    X = np.ones((2, 3), np.float32)
    y = np.array([0, 1], np.int32)
    jobs = model.loss_grad_parts(params, X, y, grad)
    assert len(jobs) == 3
    for job in jobs:
        job()
    expected = model.loss_grad(params, X, y, grad)
    assert model.loss_grad(params, X, y, grad.copy()) == expected
