"""`hpctrain data import`: CSV (streamed), .npy pairs and .npz, task inference, standardization."""

import json
import tracemalloc

import numpy as np
import pytest
from helpers import check, run_cli

from hpctrain.data import open_dataset
from hpctrain.data.importers import import_dataset
from hpctrain.data.splits import plan_splits
from hpctrain.errors import InputError


def write_csv(path, names, rows, blank_every=None):
    lines = [",".join(names)]
    for i, row in enumerate(rows):
        lines.append(",".join(repr(float(v)) if isinstance(v, float) else str(v) for v in row))
        if blank_every and i % blank_every == 0:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def read_all(path, split="train"):
    with open_dataset(path) as ds:
        return ds.read(split, 0, ds.rows(split))


def manifest(path):
    return json.loads((path / "manifest.json").read_text())


def test_csv_label_column_by_name_values_exact(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((57, 4))
    y = rng.integers(0, 2, 57)
    rows = [[*X[i, :2], int(y[i]), *X[i, 2:]] for i in range(57)]
    src = write_csv(tmp_path / "in.csv", ["f0", "f1", "target", "f2", "f3"], rows, blank_every=9)
    out = tmp_path / "ds"
    proc = check(run_cli(["data", "import", src, "--out", out, "--label", "target",
                          "--shards", 3]))
    lines = proc.stdout.splitlines()
    assert lines[0] == f"wrote {out}" and "task      binary" in lines
    assert lines[-1].split() == ["train", "57", "3"]
    Xr, yr = read_all(out)
    np.testing.assert_array_equal(Xr, X.astype(np.float32))
    np.testing.assert_array_equal(yr, y)
    m = manifest(out)
    assert (m["task"], m["classes"], m["features"]) == ("binary", 2, 4)
    assert m["feature_names"] == ["f0", "f1", "f2", "f3"] and m["label_name"] == "target"


def test_csv_quotes_spaces_and_byte_order_mark(tmp_path):
    src = tmp_path / "excel.csv"
    src.write_bytes(b'\xef\xbb\xbf"a", b ,y\r\n 1.5 ,"2",0\r\n3, "4e-1" ,2\r\n\r\n-5,6,1\r\n')
    out = tmp_path / "ds"
    check(run_cli(["data", "import", src, "--out", out, "--label", "y"]))
    X, y = read_all(out)
    np.testing.assert_array_equal(X, np.array([[1.5, 2], [3, 0.4], [-5, 6]], np.float32))
    np.testing.assert_array_equal(y, [0, 2, 1])
    assert manifest(out)["task"] == "multiclass" and manifest(out)["classes"] == 3


@pytest.mark.parametrize("labels, task, classes", [
    ([0, 1, 1, 0], "binary", 2),
    ([0, 0, 0, 0], "binary", 2),
    ([0, 3, 1, 2], "multiclass", 4),
    ([1.0, 2.0, 4.0, 0.0], "multiclass", 5),
    ([0.5, 1, 2, 3], "regression", 0),
])
def test_task_inferred_from_labels(tmp_path, labels, task, classes):
    X = np.arange(8.0).reshape(4, 2)
    np.savez(tmp_path / "d.npz", X=X, y=np.array(labels))
    m = import_dataset(tmp_path / "d.npz", tmp_path / "ds")
    assert (m["task"], m["classes"]) == (task, classes)
    _, y = read_all(tmp_path / "ds")
    np.testing.assert_array_equal(y, np.array(labels, dtype=y.dtype))


def test_task_and_classes_given(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((4, 2)), y=np.array([0, 1, 1, 0]))
    m = import_dataset(tmp_path / "d.npz", tmp_path / "a", task="multiclass", classes=6)
    assert (m["task"], m["classes"]) == ("multiclass", 6)
    m = import_dataset(tmp_path / "d.npz", tmp_path / "b", task="regression")
    assert (m["task"], m["classes"]) == ("regression", 0)
    _, y = read_all(tmp_path / "b")
    assert y.dtype == np.float32


def test_npy_pair_with_splits_is_deterministic(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 3)).astype(np.float32)
    y = rng.integers(0, 3, (500, 1))  # a column of labels is accepted as well
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    check(run_cli(["data", "import", tmp_path / "X.npy", "--labels", tmp_path / "y.npy",
                   "--out", tmp_path / "a", "--shards", 2, "--val-fraction", 0.2,
                   "--test-fraction", 0.1, "--seed", 5]))
    for name, seed in (("b", 5), ("c", 6)):
        import_dataset(tmp_path / "X.npy", tmp_path / name, shards=2, labels=tmp_path / "y.npy",
                       val_fraction=0.2, test_fraction=0.1, seed=seed)
    plan, rows = plan_splits(500, 0.2, 0.1, seed=5)
    assert rows == {"train": 350, "val": 100, "test": 50}
    for code, split in enumerate(("train", "val", "test")):
        Xs, ys = read_all(tmp_path / "a", split)
        np.testing.assert_array_equal(Xs, X[plan == code])
        np.testing.assert_array_equal(ys, y[plan == code, 0])
        assert manifest(tmp_path / "a")["splits"][split] == manifest(tmp_path / "b")["splits"][
            split]
    assert not np.array_equal(read_all(tmp_path / "a", "val")[0],
                              read_all(tmp_path / "c", "val")[0])


def test_standardize_uses_train_statistics(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(5.0, 3.0, (1000, 4))
    X[:, 1] = 2.5  # a constant feature is centred, not divided by zero
    y = rng.standard_normal(1000)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "ds"
    proc = check(run_cli(["data", "import", tmp_path / "d.npz", "--out", out, "--standardize",
                          "--val-fraction", 0.3, "--seed", 1, "--shards", 3]))
    assert "standardized  yes (train-split mean/std in manifest.json)" in proc.stdout
    plan, _ = plan_splits(1000, 0.3, 0.0, seed=1)
    X32 = X.astype(np.float32).astype(np.float64)  # what the importer stores before scaling
    mean, std = X32[plan == 0].mean(axis=0), X32[plan == 0].std(axis=0)
    std[1] = 1.0
    with open_dataset(out) as ds:
        got_mean, got_std = ds.standardization
        np.testing.assert_allclose(got_mean, mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_std, std, rtol=1e-12)
        for code, split in ((0, "train"), (1, "val")):
            Xs, _ = ds.read(split, 0, ds.rows(split))
            np.testing.assert_allclose(Xs, (X32[plan == code] - mean) / std, atol=1e-6)
    Xt, _ = read_all(out)
    assert np.abs(Xt.mean(axis=0)).max() < 1e-5
    np.testing.assert_allclose(Xt.std(axis=0), [1, 0, 1, 1], atol=1e-5)


def test_csv_streams_in_chunks(tmp_path):
    """Small chunks: values, line numbers and blank lines stay right across chunk edges."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1000, 3))
    y = rng.integers(0, 4, 1000)
    rows = [[*X[i], int(y[i])] for i in range(1000)]
    src = write_csv(tmp_path / "in.csv", ["a", "b", "c", "y"], rows, blank_every=97)
    import_dataset(src, tmp_path / "ds", shards=3, label="y", chunk_rows=64)
    Xr, yr = read_all(tmp_path / "ds")
    np.testing.assert_array_equal(Xr, X.astype(np.float32))
    np.testing.assert_array_equal(yr, y)
    # a bad label far into the file: the line number counts the header and blank lines
    rows[700][3] = 9
    bad = write_csv(tmp_path / "bad.csv", ["a", "b", "c", "y"], rows, blank_every=97)
    with pytest.raises(InputError, match=r"line 710: label 9 is out of range") as err:
        import_dataset(bad, tmp_path / "bad", label="y", chunk_rows=64, classes=4)
    assert err.value.path == str(bad)
    assert bad.read_text().splitlines()[709].endswith(",9")


def test_csv_memory_stays_bounded(tmp_path):
    """A CSV far larger than a chunk is never held whole (tracemalloc sees NumPy buffers)."""
    rng = np.random.default_rng(5)
    data = np.column_stack([rng.standard_normal((40_000, 8)), rng.integers(0, 2, 40_000)])
    src = tmp_path / "big.csv"
    np.savetxt(src, data, delimiter=",", header=",".join([f"x{i}" for i in range(8)] + ["y"]),
               comments="", fmt="%.7g")
    size = src.stat().st_size
    assert size > 3_000_000
    tracemalloc.start()
    import_dataset(src, tmp_path / "ds", label="y", chunk_rows=1000, val_fraction=0.1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < size / 4, f"peak {peak} bytes for a {size}-byte CSV"
    with open_dataset(tmp_path / "ds") as ds:
        assert ds.rows("train") + ds.rows("val") == 40_000
