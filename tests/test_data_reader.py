"""The dataset reader, through its API, on real HDF5 shards with known contents."""

import h5py
import numpy as np
import pytest

from hpctrain.data import Dataset, open_dataset, rank_slice
from hpctrain.data.importers import import_dataset
from hpctrain.errors import InputError


def write_arrays(tmp_path, X, y, shards, name="ds", **kwargs):
    """A dataset holding exactly X, y (in order, all train) via the .npz importer."""
    src = tmp_path / f"{name}.npz"
    np.savez(src, X=X, y=y)
    out = tmp_path / name
    import_dataset(src, out, shards=shards, **kwargs)
    return out


def random_rows(n, d, seed, classes=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, classes, n)


@pytest.mark.parametrize("n", [0, 1, 4, 7, 13, 100])
def test_rank_slice_covers_every_row_once_in_order_balanced(n):
    for size in range(1, 8):
        slices = [rank_slice(n, r, size) for r in range(size)]
        assert slices[0][0] == 0 and slices[-1][1] == n
        for (_, stop), (start, _) in zip(slices, slices[1:], strict=False):
            assert stop == start
        counts = [stop - start for start, stop in slices]
        assert max(counts) - min(counts) <= 1
        # the first n % size ranks get the extra row
        assert counts == sorted(counts, reverse=True)


def test_rank_slice_rejects_bad_arguments():
    for args, message in [((5, 0, 0), r"size must be >= 1, got 0"),
                          ((5, 2, 2), r"rank must be in \[0, 2\), got 2"),
                          ((5, -1, 2), r"rank must be in \[0, 2\), got -1"),
                          ((-1, 0, 1), r"n must be >= 0, got -1")]:
        with pytest.raises(ValueError, match=message):
            rank_slice(*args)


def test_every_rank_count_over_every_shard_count(tmp_path):
    """p = 1..5 ranks over 1..4 shards: each row exactly once, in order, balanced."""
    X, y = random_rows(23, 5, seed=11)
    for shards in range(1, 5):
        with open_dataset(write_arrays(tmp_path, X, y, shards, name=f"k{shards}")) as ds:
            assert len(ds.shards("train")) == shards
            for p in range(1, 6):
                parts = [ds.read_rank("train", r, p) for r in range(p)]
                sizes = [len(part[0]) for part in parts]
                assert sum(sizes) == 23 and max(sizes) - min(sizes) <= 1
                np.testing.assert_array_equal(np.concatenate([a for a, _ in parts]), X)
                np.testing.assert_array_equal(np.concatenate([b for _, b in parts]), y)


def test_read_any_range_across_shard_boundaries(tmp_path):
    X, y = random_rows(301, 9, seed=5)
    ds = open_dataset(write_arrays(tmp_path, X, y, shards=4))
    rng = np.random.default_rng(0)
    for _ in range(60):
        start, stop = sorted(rng.integers(0, 302, 2).tolist())
        Xr, yr = ds.read("train", start, stop)
        assert Xr.dtype == np.float32 and Xr.flags.c_contiguous and Xr.shape == (stop - start, 9)
        assert yr.dtype == np.int32 and yr.flags.c_contiguous
        np.testing.assert_array_equal(Xr, X[start:stop])
        np.testing.assert_array_equal(yr, y[start:stop])
    ds.close()


def test_read_touches_only_overlapping_shards_and_keeps_handles(tmp_path):
    X, y = random_rows(40, 3, seed=2)
    ds = open_dataset(write_arrays(tmp_path, X, y, shards=4))  # 10 rows per shard
    ds.read("train", 12, 18)
    assert set(ds._files) == {("train", 1)}
    handle = ds._files[("train", 1)][0]
    for start in range(10, 19):
        ds.read("train", start, start + 2)
    assert ds._files[("train", 1)][0] is handle, "reading batches must not reopen shards"
    ds.read("train", 5, 35)
    assert set(ds._files) == {("train", i) for i in range(4)}
    handles = [entry[0] for entry in ds._files.values()]
    ds.close()
    assert all(not h.id.valid for h in handles), "close() must close every shard"


def test_regression_labels_are_float32(tmp_path):
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((17, 2)), rng.standard_normal(17)
    with open_dataset(write_arrays(tmp_path, X, y, shards=2)) as ds:
        assert (ds.task, ds.classes) == ("regression", 0)
        Xr, yr = ds.read("train", 0, 17)
        assert yr.dtype == np.float32
        np.testing.assert_array_equal(yr, y.astype(np.float32))
        np.testing.assert_array_equal(Xr, X.astype(np.float32))


def test_empty_range_and_bad_ranges(tmp_path):
    X, y = random_rows(5, 3, seed=1)
    with open_dataset(write_arrays(tmp_path, X, y, shards=2)) as ds:
        Xr, yr = ds.read_rank("train", 6, 7)  # more ranks than rows: an empty share
        assert Xr.shape == (0, 3) and yr.shape == (0,)
        for start, stop in [(-1, 2), (3, 2), (0, 6)]:
            message = rf"rows \[{start}, {stop}\) outside split 'train' of 5 rows"
            with pytest.raises(ValueError, match=message):
                ds.read("train", start, stop)
        with pytest.raises(InputError, match="no split 'val'"):
            ds.rows("val")


def test_dataset_properties(tmp_path):
    X, y = random_rows(60, 4, seed=9)
    out = write_arrays(tmp_path, X, y, shards=2, val_fraction=0.25, test_fraction=0.1)
    ds = open_dataset(out)
    assert isinstance(ds, Dataset)
    assert ds.splits == ("train", "val", "test")
    assert ds.features == 4 and ds.classes == 3 and ds.task == "multiclass"
    assert [ds.rows(s) for s in ds.splits] == [39, 15, 6]
    assert ds.standardization is None
    ds.close()


def test_shape_check_on_open_names_the_shard(tmp_path):
    X, y = random_rows(20, 3, seed=4)
    out = write_arrays(tmp_path, X, y, shards=2)
    shard = out / "train" / "shard-00001.h5"
    with h5py.File(shard, "r+") as f:
        del f["y"]
        f.create_dataset("y", data=np.zeros(10, dtype=np.float32))
    with pytest.raises(InputError, match="y is float32") as err:
        open_dataset(out)
    assert err.value.path == str(shard)


def test_unreadable_rows_name_the_shard_and_the_rows(tmp_path):
    """A shard whose metadata is sound but whose data is damaged fails on read, not open."""
    X, y = random_rows(20, 3, seed=6)
    out = write_arrays(tmp_path, X, y, shards=2)
    shard = out / "train" / "shard-00001.h5"
    with h5py.File(shard, "w") as f:  # compressed: damaged bytes fail the gzip filter
        f.create_dataset("X", data=X[10:], chunks=(10, 3), compression="gzip")
        f.create_dataset("y", data=y[10:].astype(np.int32))
        offset, size = f["X"].id.get_chunk_info(0).byte_offset, f["X"].id.get_chunk_info(0).size
    data = bytearray(shard.read_bytes())
    data[offset:offset + size] = b"\xff" * size
    shard.write_bytes(bytes(data))
    with open_dataset(out) as ds:
        np.testing.assert_array_equal(ds.read("train", 0, 10)[0], X[:10])
        with pytest.raises(InputError, match=r"cannot read rows 0\.\.5: ") as err:
            ds.read("train", 8, 15)
    assert err.value.path == str(shard) and "\n" not in str(err.value)
