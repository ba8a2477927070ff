"""Damaged and hostile checkpoints: refused in bounded time with one line, never parsed blind."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from helpers import check, child_env, run_cli
from train_util import checkpoints, make_data

from hpctrain import checkpoint as ckpt
from hpctrain import sealed
from hpctrain.errors import InputError
from hpctrain.model import MLP
from hpctrain.optim import make_optimizer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ck")
    data = make_data(root / "data", samples=300, features=5, val=0.2)
    out = str(root / "run")
    check(run_cli(["train", "--data", data, "--out", out, "--steps", "6", "--hidden", "4",
                   "--checkpoint-every", "3", "--batch-size", "20"]))
    return data, out


def write_small(path, hidden=(4,)):
    model = MLP(5, hidden, "relu", "binary", 2)
    opt = make_optimizer("adam", model.n_params, lr=1e-3)
    ckpt.write(path, model, model.init_params(1), opt.state_dict(), step=3)
    return model


# The byte-flip sweep runs in one child so that a hang inside HDF5 (which no signal can
# interrupt) fails the test by its timeout instead of hanging pytest.
SWEEP = textwrap.dedent("""
    import shutil, sys
    import numpy as np
    from hpctrain import checkpoint as ckpt
    from hpctrain.errors import InputError
    src, work, seed, cases = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    good = ckpt.load(src)
    data = open(src, "rb").read()
    rng = np.random.default_rng(seed)
    refused = same = 0
    for case in range(cases):
        broken = bytearray(data)
        for pos in rng.integers(0, len(data), size=1 + case % 3):
            broken[pos] ^= 1 << int(rng.integers(0, 8))
        open(work, "wb").write(broken)
        try:
            state = ckpt.load(work)
        except InputError as err:
            assert work in str(err), err
            refused += 1
            continue
        # a flip in the seal's padding leaves the content intact: it must load unchanged
        assert np.array_equal(state.params, good.params), case
        same += 1
    print(refused, same)
""")


@pytest.mark.parametrize("seed", [0, 1, int.from_bytes(os.urandom(2), "little")])
def test_flipped_bytes_are_refused_or_harmless_never_a_hang_or_a_traceback(run, tmp_path, seed):
    src = checkpoints(run[1])[-1]
    proc = subprocess.run([sys.executable, "-c", SWEEP, src, str(tmp_path / "x.h5"), str(seed),
                           "300"], capture_output=True, text=True, timeout=120, env=child_env())
    assert proc.returncode == 0, f"seed {seed}:\n{proc.stderr[-3000:]}"
    refused, same = map(int, proc.stdout.split())
    assert refused + same == 300 and refused > 250


def test_the_seal_is_checked_before_hdf5_reads_the_file(tmp_path):
    path = str(tmp_path / "c.h5")
    write_small(path)
    with open(path, "rb") as f:
        head = f.read(sealed.USERBLOCK)
    assert head.startswith(sealed.MAGIC)
    # damage HDF5's own superblock (just after the seal): refused by the seal, not by HDF5
    with open(path, "r+b") as f:
        f.seek(sealed.USERBLOCK)
        f.write(b"\x00" * 8)
    with pytest.raises(InputError, match="fails its checksum"):
        ckpt.load(path)
    with open(path, "ab") as f:
        f.write(b"x")
    with pytest.raises(InputError, match="truncated or extended"):
        ckpt.load(path)


def test_a_stored_spec_that_disagrees_with_the_arrays_is_refused_before_allocating(tmp_path):
    """A validly sealed file whose model spec claims 10^12 hidden units: refused from the
    shapes, not attempted (which was a MemoryError traceback)."""
    path = str(tmp_path / "c.h5")
    write_small(path)
    with h5py.File(path, "r+") as f:
        spec = json.loads(f.attrs["model"])
        spec["hidden"] = [10**12]
        f.attrs["model"] = json.dumps(spec)
    sealed.seal(path)  # a hostile writer can seal too: the shapes must still be checked
    with pytest.raises(InputError, match=r"params/layer0/W is float32\[5, 4\], but its model "
                                         r"needs float32\[5, 1000000000000\]"):
        ckpt.load(path)


def test_an_array_without_its_bytes_is_refused(tmp_path):
    """HDF5 datasets may be declared without storage (fill value): the file must really
    hold every value, so the allocation is bounded by the file's size."""
    path = str(tmp_path / "c.h5")
    model = write_small(path)
    with h5py.File(path, "r+") as f:
        del f["params/layer0/W"]
        f.create_dataset("params/layer0/W", shape=(5, 4), dtype=np.float32)  # never written
    sealed.seal(path)
    with pytest.raises(InputError, match="does not hold its 20 values"):
        ckpt.load(path, model)


def test_an_unsealed_format_1_checkpoint_still_loads(tmp_path):
    """Checkpoints written before the seal: parsed, then checked by their checksum attribute."""
    model = MLP(5, (4,), "relu", "binary", 2)
    params = model.init_params(2)
    opt = make_optimizer("sgd", model.n_params, lr=0.1)
    state = opt.state_dict()
    meta = {"format": ckpt.LEGACY, "step": 7, "epoch": 1, "step_in_epoch": 2,
            "model": model.spec(), "optimizer": {"name": state["name"], "step": state["step"]},
            "rng": {}, "config": {}}
    path = str(tmp_path / "old.h5")
    arrays = ckpt._flatten(model, params, state)
    with h5py.File(path, "w") as f:
        for key, array in arrays:
            f.create_dataset(key, data=array)
        for key, value in meta.items():
            f.attrs[key] = value if isinstance(value, (int, str)) else json.dumps(value)
        f.attrs["checksum"] = ckpt._legacy_checksum(meta, arrays)
    loaded = ckpt.load(path, model)
    assert loaded.step == 7 and np.array_equal(loaded.params, params)
    with h5py.File(path, "r+") as f:
        f["params/layer0/b"][0] += 1
    with pytest.raises(InputError, match="fails its checksum"):
        ckpt.load(path, model)


def test_evaluate_and_predict_name_a_damaged_checkpoint_in_one_line(run, tmp_path):
    data, out = run
    bad = str(tmp_path / "bad.h5")
    shutil.copy(checkpoints(out)[-1], bad)
    with open(bad, "r+b") as f:
        f.seek(os.path.getsize(bad) // 2)
        f.write(b"\xff\xfe\xfd")
    proc = run_cli(["evaluate", "--data", data, "--checkpoint", bad, "--split", "val"], timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"hpctrain: error: {bad}: checkpoint fails its checksum (corrupted)"]


def test_checkpoint_may_name_a_run_directory_or_its_checkpoints(run, tmp_path):
    data, out = run
    newest = checkpoints(out)[-1]
    for where in (out, os.path.join(out, "checkpoints")):
        proc = check(run_cli(["evaluate", "--data", data, "--checkpoint", where, "--split",
                              "val", "--json"]))
        assert json.loads(proc.stdout)["rows"] > 0
    # the newest is damaged: the one before it is used, and the skipped one named
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    with open(os.path.join(copy, "checkpoints", os.path.basename(newest)), "r+b") as f:
        f.seek(sealed.USERBLOCK + 100)
        f.write(b"\x00\x01")
    proc = check(run_cli(["evaluate", "--data", data, "--checkpoint", copy, "--split", "val",
                          "--json"]))
    assert "skipping" in proc.stderr and os.path.basename(newest) in proc.stderr
    proc = run_cli(["evaluate", "--data", data, "--checkpoint", str(tmp_path), "--split", "val"])
    assert proc.returncode == 2 and "no checkpoint here" in proc.stderr
