"""Overlapping the allreduce with the backward pass changes when sums happen, not what they are."""

import numpy as np
import pytest
from helpers import check, run_mpi
from train_util import final_params, make_data

from hpctrain.gradsync import bucket_bounds


def test_buckets_cover_the_buffer_from_its_end():
    assert bucket_bounds(10, 4) == [(6, 10), (2, 6), (0, 2)]
    assert bucket_bounds(3, 100) == [(0, 3)]
    assert bucket_bounds(0, 4) == []


def test_staged_backward_is_bitwise_the_fused_one():
    from hpctrain.kernels import mlp_stages

    from hpctrain.model import MLP

    m = MLP(13, (9, 7), "tanh", "multiclass", 4)
    rng = np.random.default_rng(7)
    params = m.init_params(1)
    X = rng.standard_normal((11, 13), dtype=np.float32)
    y = rng.integers(0, 4, 11).astype(np.int32)
    fused = np.empty(m.n_params, np.float32)
    loss, correct = m.loss_grad(params, X, y, fused)
    staged = np.full(m.n_params, np.nan, np.float32)
    outputs, deltas = m._workspace(11)
    layout = (m._offsets, m._fan_in, m._fan_out, m._acts)
    l2, c2 = mlp_stages.forward_head(params, X, y, *layout, m._task_code, outputs, deltas)
    for l in (2, 1, 0):
        mlp_stages.backward_layer(l, params, X, staged, *layout, outputs, deltas)
    assert (l2, c2) == (pytest.approx(loss), correct)
    np.testing.assert_array_equal(staged, fused)


def test_overlapped_training_matches_and_repeats_exactly(tmp_path):
    data = make_data(tmp_path / "data", samples=400, features=21, classes=3, shards=2)
    common = ["train", "--data", data, "--hidden", "30,20", "--steps", "12",
              "--batch-size", "17", "--log-every", "100"]
    runs = {}
    for name, bucket in (("plain", "0"), ("a", "0.002"), ("b", "0.002")):
        run = str(tmp_path / name)
        check(run_mpi(3, [*common, "--out", run, "--bucket-mb", bucket]))
        runs[name] = final_params(run)
    np.testing.assert_array_equal(runs["a"], runs["b"])  # timing cannot change the sums
    np.testing.assert_allclose(runs["a"], runs["plain"], atol=1e-5)
