"""Each CPU kernel on its own, against float64 NumPy and central finite differences.

Shapes are odd on purpose: a single row, a single feature, sizes that are not multiples of
the SIMD width. Inputs are fresh random numbers each run (the seed is printed).
"""

import numpy as np
import pytest
from hpctrain.kernels import ACTIVATIONS, TASKS
from hpctrain.kernels.activations import add_bias_activate, scale_by_derivative
from hpctrain.kernels.dense import column_sums, dense_backward, dense_forward
from hpctrain.kernels.heads import head_loss_grad, head_output
from test_kernels_reference import (
    ACTIVATION_NAMES,
    TASK_NAMES,
    activate,
    activation_slope,
    assert_close32,
    central_differences,
    fresh_rng,
    head_correct,
    head_gradient,
    head_losses,
    random_labels,
)

SHAPES = [(1, 1, 1), (1, 5, 3), (7, 1, 4), (13, 9, 11), (33, 17, 10)]  # (n, fan_in, fan_out)


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_bias_and_activation_match_numpy(activation):
    rng = fresh_rng()
    for n, _, o in SHAPES:
        Z = f32(3 * rng.standard_normal((n, o)))
        b = f32(rng.standard_normal(o))
        expected = activate(Z.astype(np.float64) + b, activation)
        add_bias_activate(Z, b, ACTIVATIONS[activation])
        assert_close32(Z, expected, f"{activation} {n}x{o}", rel=1e-6)


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_derivative_from_the_output_matches_finite_differences(activation):
    rng = fresh_rng()
    z = rng.standard_normal((6, 7)) * 2
    A = f32(activate(z, activation))
    G = f32(rng.standard_normal(z.shape))
    numeric = central_differences(
        lambda v: float(np.sum(G * activate(v.reshape(z.shape), activation))), z.ravel())
    dA = G.copy()
    scale_by_derivative(dA, A, ACTIVATIONS[activation])
    assert_close32(dA, numeric.reshape(z.shape), activation, rel=1e-5)


def test_unknown_activation_code_is_refused():
    Z = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="unknown activation"):
        add_bias_activate(Z, np.zeros(2, np.float32), 7)


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_dense_forward_matches_numpy(activation):
    rng = fresh_rng()
    for n, i, o in SHAPES:
        A, W, b = (f32(rng.standard_normal(s)) for s in ((n, i), (i, o), (o,)))
        Z = np.full((n, o), np.nan, np.float32)
        dense_forward(A, W, b, Z, ACTIVATIONS[activation])
        expected = activate(A.astype(np.float64) @ W + b, activation)
        assert_close32(Z, expected, f"{activation} {n}x{i}x{o}", rel=1e-5)


@pytest.mark.parametrize("n, i, o", SHAPES)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_dense_backward_matches_finite_differences(activation, n, i, o):
    """L = sum(G * (act(Zp) @ W + b)): dW, db and dL/dZp (the previous layer's delta, with
    its activation's derivative fused in) against finite differences and the formulas."""
    rng = fresh_rng()
    Zp, W, b, G = (rng.standard_normal(s) for s in ((n, i), (i, o), (o,), (n, o)))
    A_prev, W32, G32 = f32(activate(Zp, activation)), f32(W), f32(G)
    # the reference starts from the float32 values the kernel sees
    A64, W64, G64 = (a.astype(np.float64) for a in (A_prev, W32, G32))

    def loss(Wv, bv, Av):
        return float(np.sum(G64 * (Av @ Wv + bv)))

    dW, db = np.full((i, o), np.nan, np.float32), np.full(o, np.nan, np.float32)
    dZp = np.full((n, i), np.nan, np.float32)
    dense_backward(A_prev, W32, G32, dW, db, dZp, ACTIVATIONS[activation], True)

    fd_W = central_differences(lambda v: loss(v.reshape(i, o), b, A64), W64.ravel())
    fd_b = central_differences(lambda v: loss(W64, v, A64), b)
    fd_Zp = central_differences(
        lambda v: loss(W64, b, activate(v.reshape(n, i), activation)), Zp.ravel())
    assert_close32(dW, fd_W.reshape(i, o), "dW")
    assert_close32(db, fd_b, "db")
    assert_close32(dW, A64.T @ G64, "dW formula")
    assert_close32(db, G64.sum(axis=0), "db formula")
    # relu's kink: finite differences straddling 0 are meaningless (and improbable)
    away = np.abs(Zp) > 1e-5
    assert_close32(dZp[away], fd_Zp.reshape(n, i)[away], "dZ_prev")
    expected = (G64 @ W64.T) * activation_slope(Zp, activation)
    assert_close32(dZp[away], expected[away], "dZ_prev formula")


def test_dense_backward_without_the_previous_delta_leaves_it_alone():
    rng = fresh_rng()
    A, W, dZ = f32(rng.standard_normal((3, 2))), f32(rng.standard_normal((2, 4))), \
        f32(rng.standard_normal((3, 4)))
    dW, db, untouched = np.empty((2, 4), np.float32), np.empty(4, np.float32), \
        np.full((3, 2), 7.0, np.float32)
    dense_backward(A, W, dZ, dW, db, untouched, ACTIVATIONS["relu"], False)
    assert np.all(untouched == 7.0)
    assert_close32(dW, A.astype(np.float64).T @ dZ, "dW")


def test_column_sums_of_many_rows():
    rng = fresh_rng()
    dZ = f32(rng.standard_normal((1001, 3)))
    db = np.full(3, np.nan, np.float32)
    column_sums(dZ, db)
    assert_close32(db, dZ.astype(np.float64).sum(axis=0), "db", rel=1e-5)


@pytest.mark.parametrize("n, classes", [(1, 2), (1, 3), (9, 5), (17, 10)])
@pytest.mark.parametrize("task", TASK_NAMES)
def test_heads_match_numpy_and_finite_differences(task, n, classes):
    rng = fresh_rng()
    outputs = classes if task == "multiclass" else 1
    Z = f32(3 * rng.standard_normal((n, outputs)))
    y = random_labels(rng, task, n, classes)
    Z64, y64 = Z.astype(np.float64), y.astype(np.float64)
    dZ = np.full_like(Z, np.nan)
    loss, correct = head_loss_grad(Z, y, dZ, TASKS[task], True)
    assert loss == pytest.approx(head_losses(Z64, y64, task).sum(), rel=1e-12, abs=1e-12)
    assert correct == head_correct(Z64, y64, task)
    numeric = central_differences(
        lambda v: float(np.sum(head_losses(v.reshape(n, outputs), y64, task))), Z64.ravel())
    assert_close32(dZ, numeric.reshape(n, outputs), "dZ", rel=1e-5)
    assert_close32(dZ, head_gradient(Z64, y64, task), "dZ formula", rel=1e-6)
    again = head_loss_grad(Z, y, Z, TASKS[task], False)
    assert again == (loss, correct)  # without gradients: same numbers, Z not written
    assert np.array_equal(Z64, Z.astype(np.float64))


def test_heads_stay_finite_on_extreme_logits():
    for z in (-1e30, -1e4, -88.0, 0.0, 88.0, 1e4, 1e30):
        Z = np.array([[z], [z]], np.float32)
        dZ = np.empty_like(Z)
        loss, _ = head_loss_grad(Z, np.array([0, 1], np.int32), dZ, TASKS["binary"], True)
        expected = head_losses(Z.astype(np.float64), np.array([0.0, 1.0]), "binary").sum()
        assert np.isfinite(loss) and np.all(np.isfinite(dZ))
        assert loss == pytest.approx(expected, rel=1e-12)
    Z = np.array([[1e30, -1e30, 0.0], [-1e4, 1e4, 1e4]], np.float32)
    dZ = np.empty_like(Z)
    loss, correct = head_loss_grad(Z, np.array([0, 2], np.int32), dZ, TASKS["multiclass"], True)
    assert loss == pytest.approx(np.log(2.0))  # row 0 exact, row 1 a tie between two classes
    assert np.all(np.isfinite(dZ)) and correct == 1  # argmax takes the first of a tie


@pytest.mark.parametrize("task, labels, outputs", [
    ("binary", [0, 2], 1), ("binary", [-1, 1], 1),
    ("multiclass", [0, 3], 3), ("multiclass", [-1, 0], 3)])
def test_impossible_labels_are_refused_not_read_past_the_row(task, labels, outputs):
    Z = np.zeros((2, outputs), np.float32)
    with pytest.raises(ValueError, match="label"):
        head_loss_grad(Z, np.array(labels, np.int32), Z.copy(), TASKS[task], True)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_head_output_is_the_prediction(task):
    rng = fresh_rng()
    outputs = 4 if task == "multiclass" else 1
    Z = f32(5 * rng.standard_normal((11, outputs)))
    out = np.full_like(Z, np.nan)
    head_output(Z, TASKS[task], out)
    Z64 = Z.astype(np.float64)
    if task == "binary":
        expected = 1 / (1 + np.exp(-Z64))
    elif task == "multiclass":
        expected = np.exp(Z64 - Z64.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
    else:
        expected = Z64
    assert_close32(out, expected, task, rel=1e-6)
