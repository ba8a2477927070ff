"""Broken datasets: opening, inspecting or verifying one names the bad file, exit 2.

Like test_data_errors.py (whose helpers it uses), each kind of damage goes through the real
command once or more; the other cases call the same functions in-process.
"""

import json
import shutil

import h5py
import numpy as np
import pytest
from helpers import check, run_cli
from test_data_errors import fails, make, raises

from hpctrain.data import open_dataset
from hpctrain.data.verify import verify_dataset


@pytest.fixture
def dataset(tmp_path):
    out = tmp_path / "ds"
    make(out, 5)
    return out


def edit_manifest(out, change):
    path = out / "manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_missing_dataset_or_manifest(tmp_path):
    fails(["data", "inspect", tmp_path / "nowhere"], "nowhere: no such dataset directory")
    (tmp_path / "plain").mkdir()
    fails(["data", "inspect", tmp_path / "plain"], "plain/manifest.json: missing manifest")


def test_manifest_of_another_version_or_format(dataset):
    edit_manifest(dataset, lambda d: d.update(version=2))
    fails(["data", "inspect", dataset], "manifest.json: manifest version 2 is not supported")
    edit_manifest(dataset, lambda d: d.update(version=1, format="something-else"))
    raises(open_dataset, dataset, fragments=["manifest.json: not an hpctrain-dataset manifest"])


def test_malformed_manifests(dataset):
    manifest = dataset / "manifest.json"
    good = manifest.read_text()
    manifest.write_text(good[:-30])
    raises(open_dataset, dataset, fragments=["manifest.json: not valid JSON"])
    cases = [
        (lambda d: d.pop("task"), "manifest has no 'task'"),
        (lambda d: d.update(classes=3), "classes 3 does not fit task 'binary'"),
        (lambda d: d.update(dtype="float64"), "dtype must be 'float32'"),
        (lambda d: d["splits"]["train"].update(rows=41), "shards hold 40 rows, the split says 41"),
        (lambda d: d["splits"]["train"]["shards"][0].update(file="../../etc/passwd"),
         "bad shard file name"),
        (lambda d: d["splits"]["train"]["shards"][0].update(sha256="abc"), "sha256 must be 64"),
        (lambda d: d.update(standardization={"mean": [0], "std": [1]}), "standardization must"),
    ]
    for change, fragment in cases:
        manifest.write_text(good)
        edit_manifest(dataset, change)
        raises(open_dataset, dataset, fragments=[str(manifest), fragment])


def test_missing_shard(dataset):
    shard = dataset / "train" / "shard-00001.h5"
    shard.unlink()
    fails(["data", "inspect", dataset], f"{shard}: missing shard")


def test_checksum_mismatch_found_by_verify(dataset):
    shard = dataset / "train" / "shard-00000.h5"
    with h5py.File(shard, "r") as f:
        offset = f["X"].id.get_chunk_info(0).byte_offset
    data = bytearray(shard.read_bytes())
    data[offset + 5] ^= 0xFF  # one byte of feature data: HDF5 cannot notice, sha256 does
    shard.write_bytes(bytes(data))
    # a plain inspect reads only metadata, so it still lists the dataset without complaint
    lines = check(run_cli(["data", "inspect", dataset])).stdout.splitlines()
    assert lines[-1].split() == ["train", "40", "2"]
    fails(["data", "inspect", dataset, "--verify"], f"{shard}: sha256 mismatch")


def test_shape_mismatch(dataset):
    shard = dataset / "train" / "shard-00001.h5"
    with h5py.File(shard, "w") as f:
        f.create_dataset("X", data=np.zeros((19, 3), np.float32))
        f.create_dataset("y", data=np.zeros(19, np.int32))
    fails(["data", "inspect", dataset], f"{shard}: X is float32 (19, 3), the manifest says "
          "float32 (20, 3)")
    with h5py.File(shard, "w") as f:
        f.create_dataset("X", data=np.zeros((20, 3), np.float64))
        f.create_dataset("y", data=np.zeros(20, np.int32))
    raises(verify_dataset, dataset, fragments=[f"{shard}: X is float64"])
    with h5py.File(shard, "w") as f:
        f.create_dataset("X", data=np.zeros((20, 3), np.float32))
    raises(open_dataset, dataset, fragments=[f"{shard}: shard has no dataset 'y'"])


def test_truncated_and_corrupted_hdf5(dataset):
    shard = dataset / "train" / "shard-00000.h5"
    original = shard.read_bytes()
    shard.write_bytes(original[: len(original) // 2])
    fails(["data", "inspect", dataset], f"{shard}: not a readable HDF5 shard")
    shard.write_bytes(b"\x00" * 64 + original[64:])  # superblock destroyed
    raises(verify_dataset, dataset, fragments=[f"{shard}: not a readable HDF5 shard"])
    shutil.copy(dataset / "manifest.json", shard)  # not HDF5 at all
    raises(open_dataset, dataset, fragments=[f"{shard}: not a readable HDF5 shard"])
