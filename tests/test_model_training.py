"""The model and optimizer learn: a few hundred full-batch steps on teacher-network data
drive the loss down, and held-out accuracy is comparable to scikit-learn's MLP's."""

import warnings

import numpy as np
import pytest
from test_kernels_reference import fresh_rng

from hpctrain.model import MLP
from hpctrain.optim import make_optimizer

FEATURES, HIDDEN, TRAIN, TEST = 8, 32, 1500, 1000


def teacher_data(rng, task, classes):
    """Inputs ~ N(0, 1); targets from a random one-hidden-layer tanh teacher."""
    X = rng.standard_normal((TRAIN + TEST, FEATURES)).astype(np.float32)
    W1 = rng.standard_normal((FEATURES, 16)) / np.sqrt(FEATURES)
    W2 = rng.standard_normal((16, max(classes, 1))) * 2
    scores = np.tanh(X @ W1) @ W2
    if task == "binary":
        y = (scores[:, 0] > np.median(scores[:, 0])).astype(np.int32)
    elif task == "multiclass":
        y = scores.argmax(axis=1).astype(np.int32)
    else:
        y = (scores[:, 0] / scores[:, 0].std()).astype(np.float32)
    return X[:TRAIN], y[:TRAIN], X[TRAIN:], y[TRAIN:]


def train(task, classes, X, y, steps, optimizer="adam", lr=1e-2, **settings):
    m = MLP(FEATURES, (HIDDEN,), "relu", task, classes)
    params = m.init_params(0)
    grad = np.empty_like(params)
    opt = make_optimizer(optimizer, m.n_params, lr=lr, **settings)
    losses = []
    for _ in range(steps):
        loss, _ = m.loss_grad(params, X, y, grad)
        opt.step(params, grad, 1.0 / len(X), lr)
        losses.append(loss / len(X))
    return m, params, losses


@pytest.mark.parametrize("task, classes, optimizer, settings", [
    ("binary", 2, "adam", {}),
    ("multiclass", 4, "adam", {"weight_decay": 1e-4}),
    ("regression", 0, "sgd", {"lr": 0.05, "momentum": 0.9}),
])
def test_training_on_teacher_data_drives_the_loss_down(task, classes, optimizer, settings):
    rng = fresh_rng()
    X, y, X_test, y_test = teacher_data(rng, task, classes)
    m, params, losses = train(task, classes, X, y, 300, optimizer, **settings)
    assert losses[-1] < 0.25 * losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    test_loss, correct = m.evaluate(params, X_test, y_test)
    if task == "regression":  # targets have unit variance: explain most of it
        assert test_loss / len(X_test) < 0.25
    else:
        assert correct / len(X_test) > 0.8  # chance is at most 0.5; the teacher is learnable


@pytest.mark.parametrize("task, classes", [("binary", 2), ("multiclass", 4)])
def test_held_out_accuracy_is_comparable_to_scikit_learn(task, classes):
    neural = pytest.importorskip(
        "sklearn.neural_network",
        reason="scikit-learn is not installed (pip install scikit-learn, or the 'test' extra)")
    rng = fresh_rng()
    X, y, X_test, y_test = teacher_data(rng, task, classes)
    m, params, _ = train(task, classes, X, y, 400)
    ours = m.evaluate(params, X_test, y_test)[1] / len(X_test)
    with warnings.catch_warnings():  # its "not converged after 400 epochs" is expected
        warnings.simplefilter("ignore")
        reference = neural.MLPClassifier(hidden_layer_sizes=(HIDDEN,), max_iter=400,
                                         random_state=0).fit(X, y).score(X_test, y_test)
    print(f"held-out accuracy: hpctrain {ours:.3f}, scikit-learn {reference:.3f}")
    # 1000 test rows: one model's accuracy wobbles by about 0.01 from data to data
    assert ours >= reference - 0.04
