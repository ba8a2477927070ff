"""`hpctrain data synth` and make_synthetic: reproducible rows, teacher labels, splits."""

import json

import numpy as np
import pytest
from helpers import check, run_cli

from hpctrain.data import open_dataset
from hpctrain.data.splits import plan_splits
from hpctrain.data.synth import BLOCK_ROWS, make_synthetic, teacher_weights
from hpctrain.errors import InputError


def read_all(path, split="train"):
    with open_dataset(path) as ds:
        return ds.read(split, 0, ds.rows(split))


def synth(out, *args):
    return check(run_cli(["data", "synth", "--out", out, *map(str, args)]))


def test_rows_identical_whatever_the_shard_count(tmp_path):
    common = ["--samples", 203, "--features", 6, "--classes", 3, "--seed", 7,
              "--val-fraction", 0.1]
    synth(tmp_path / "k1", "--shards", 1, *common)
    synth(tmp_path / "k3", "--shards", 3, *common)
    for shards in (2, 4):  # the same function the command calls, without a process each
        make_synthetic(tmp_path / f"k{shards}", 203, 6, 3, shards, val_fraction=0.1, seed=7)
    for split in ("train", "val"):
        X1, y1 = read_all(tmp_path / "k1", split)
        for shards in range(2, 5):
            with open_dataset(tmp_path / f"k{shards}") as ds:
                assert len(ds.shards(split)) == min(shards, ds.rows(split))
            X, y = read_all(tmp_path / f"k{shards}", split)
            assert X.tobytes() == X1.tobytes() and y.tobytes() == y1.tobytes()


def test_splits_partition_the_same_rows(tmp_path):
    """With val/test held out, the rows are those of the unsplit dataset, routed by the plan."""
    n = BLOCK_ROWS + 1000  # crosses a generation block boundary
    whole = make_synthetic(tmp_path / "whole", n, 4, 2, shards=2, seed=3)
    split = make_synthetic(tmp_path / "split", n, 4, 2, shards=3, val_fraction=0.15,
                           test_fraction=0.05, seed=3)
    assert whole["splits"]["train"]["rows"] == n
    X, y = read_all(tmp_path / "whole")
    plan, rows = plan_splits(n, 0.15, 0.05, seed=3)
    for code, name in enumerate(("train", "val", "test")):
        Xs, ys = read_all(tmp_path / "split", name)
        assert split["splits"][name]["rows"] == rows[name] == len(Xs)
        np.testing.assert_array_equal(Xs, X[plan == code])
        np.testing.assert_array_equal(ys, y[plan == code])


def teacher_logits(X, seed, outputs):
    """The teacher network in float64, as the reference for the stored labels."""
    w1, w2 = (w.astype(np.float64) for w in teacher_weights(seed, X.shape[1], outputs))
    return np.tanh(X.astype(np.float64) @ w1) @ w2


def test_labels_come_from_the_teacher(tmp_path):
    for classes, outputs in ((2, 1), (5, 5)):
        out = tmp_path / f"c{classes}"
        synth(out, "--samples", 2000, "--features", 11, "--classes", classes, "--seed", 4)
        X, y = read_all(out)
        assert y.dtype == np.int32 and set(np.unique(y)) <= set(range(classes))
        z = teacher_logits(X, 4, outputs)
        if classes == 2:
            expected, margin = (z[:, 0] > 0), np.abs(z[:, 0])
            assert 0.3 < y.mean() < 0.7, "an odd teacher gives roughly balanced labels"
        else:
            expected = z.argmax(axis=1)
            top2 = np.sort(z, axis=1)[:, -2:]
            margin = top2[:, 1] - top2[:, 0]
            assert len(np.unique(y)) == classes
        clear = margin > 1e-4  # float32 vs float64 may differ only on near-ties
        assert clear.mean() > 0.99
        np.testing.assert_array_equal(y[clear], expected[clear])
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["task"] == ("binary" if classes == 2 else "multiclass")
        assert manifest["classes"] == classes


def test_regression_targets_are_teacher_plus_small_noise(tmp_path):
    out = tmp_path / "reg"
    synth(out, "--samples", 3000, "--features", 8, "--classes", 0, "--seed", 9)
    X, y = read_all(out)
    assert y.dtype == np.float32
    residual = y - teacher_logits(X, 9, 1)[:, 0]
    assert 0.07 < residual.std() < 0.13 and abs(residual.mean()) < 0.01


def test_seed_changes_the_rows_and_features_are_standard_normal(tmp_path):
    synth(tmp_path / "a", "--samples", 4000, "--features", 5, "--seed", 1)
    synth(tmp_path / "b", "--samples", 4000, "--features", 5, "--seed", 2)
    Xa, _ = read_all(tmp_path / "a")
    Xb, _ = read_all(tmp_path / "b")
    assert not np.array_equal(Xa, Xb)
    assert abs(Xa.mean()) < 0.05 and abs(Xa.std() - 1) < 0.05


def test_synth_prints_the_summary_and_inspect_verifies(tmp_path):
    out = tmp_path / "d"
    proc = synth(out, "--samples", 100, "--features", 3, "--shards", 2, "--test-fraction", 0.2)
    assert f"wrote {out}" in proc.stdout
    proc = check(run_cli(["data", "inspect", out, "--verify"]))
    lines = proc.stdout.splitlines()
    assert "task      binary" in lines and "features  3" in lines and "classes   2" in lines
    assert lines[-3].split() == ["train", "80", "2"]
    assert lines[-2].split() == ["test", "20", "2"]
    assert lines[-1].startswith("verified  4 shards")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "hpctrain-dataset" and manifest["version"] == 1
    assert manifest["dtype"] == "float32"
    assert [s["file"] for s in manifest["splits"]["test"]["shards"]] == [
        "test/shard-00000.h5", "test/shard-00001.h5"]


def test_synth_usage_errors_exit_2(tmp_path):
    # one check of ours (InputError) and one of click's (an option's range)
    for args, last_line in (
            (["--classes", 1], "hpctrain: error: --classes must be 0 (regression), 2 (binary) "
                               "or more, got 1"),
            (["--val-fraction", 1.0], "hpctrain: error: Invalid value for '--val-fraction': "
                                      "1.0 is not in the range 0.0<=x<1.0. (see 'hpctrain "
                                      "data synth --help')")):
        proc = run_cli(["data", "synth", "--out", tmp_path / "x", "--samples", 10,
                        "--features", 2, *map(str, args)])
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == last_line, proc.stderr      # one line, nothing else
    for kwargs, message in (({"classes": 1}, "--classes must be 0"),
                            ({"samples": 0}, "--samples must be >= 1"),
                            ({"shards": 0}, "--shards must be >= 1"),
                            ({"seed": -1}, "--seed must be >= 0"),
                            ({"val_fraction": 0.6, "test_fraction": 0.5}, "no training rows")):
        args = {"samples": 10, "features": 2, "classes": 2, "shards": 1, **kwargs}
        with pytest.raises(InputError, match=message):
            make_synthetic(tmp_path / "x", **args)
    assert [p.name for p in tmp_path.iterdir()] == []
