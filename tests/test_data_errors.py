"""Bad input to `hpctrain data`: one line naming the file (and line/row), exit 2, nothing
half-written, nothing overwritten. Broken datasets are in test_data_broken.py, which shares
this file's helpers.

Each kind of failure goes once through the real command (a subprocess: exit status 2 and a
single `hpctrain: error:` line); the long tables of bad inputs call the same functions the
commands call, in-process, and check the InputError's text (file + where + what), because a
subprocess per case would cost minutes of CI time for no extra coverage.
"""

import json
import os

import numpy as np
import pytest
from helpers import check, fails, run_cli

from hpctrain.data import open_dataset
from hpctrain.data.importers import import_dataset
from hpctrain.data.synth import make_synthetic
from hpctrain.data.verify import verify_dataset
from hpctrain.data.writer import write_dataset
from hpctrain.errors import InputError


def raises(fn, *args, fragments=(), **kwargs):
    """Call fn; assert an InputError whose one-line text holds every fragment."""
    with pytest.raises(InputError) as caught:
        fn(*args, **kwargs)
    text = str(caught.value)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return caught.value


def leftovers(directory):
    """Hidden temporary directories a failed write might have left behind."""
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


# -- import: bad input files ------------------------------------------------------------------

CSV_CASES = {
    "non-numeric": ("a,b,y\n1,2,0\n3,abc,1\n", ["line 3, column 'b': not a number: 'abc'"]),
    "empty-cell": ("a,b,y\n1,,0\n", ["line 2, column 'b': empty value"]),
    "ragged": ("a,b,y\n1,2,0\n\n3,1\n", ["line 4: 2 values, the header has 3 (ragged row)"]),
    "too-long": ("a,b,y\n1,2,0,7\n", ["line 2: 4 values, the header has 3"]),
    "nan": ("a,b,y\n1,2,0\n3,nan,1\n", ["line 3, column 'b': feature value is NaN"]),
    "inf": ("a,b,y\n-inf,2,0\n", ["line 2, column 'a': feature value is NaN, infinite"]),
    "beyond-float32": ("a,b,y\n1,2,0\n1e39,2,1\n", ["line 3, column 'a'", "float32 range"]),
    "nan-label": ("a,b,y\n1,2,0\n3,4,nan\n", ["line 3, column 'y': label nan"]),
    "negative-label": ("a,b,y\n1,2,0\n3,4,1\n5,6,-1\n",
                       ["line 4: label -1 is out of range for multiclass"]),
    "binary-two-values-not-01": ("a,b,y\n1,2,1\n3,4,2\n",
                                 ["line 3: label 2 is out of range for binary (0..1)"]),
    "header-only": ("a,b,y\n", ["empty input: a header but no data rows"]),
    "empty-file": ("", ["empty input: no header row"]),
    "blank-lines-only": ("a,b,y\n\n\n", ["empty input"]),
    "no-label-column": ("a,b,label\n1,2,3\n", ["no label column 'y' in the header",
                                               "columns: a, b, label"]),
    "only-the-label": ("y\n1\n", ["no feature columns besides the label"]),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_bad_csv(tmp_path, case):
    text, fragments = CSV_CASES[case]
    src = tmp_path / "in.csv"
    src.write_text(text)
    err = raises(import_dataset, src, tmp_path / "ds", label="y", fragments=fragments)
    assert err.path == str(src)
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []


def test_bad_csv_through_the_command(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a,b,y\n1,2,0\n3,abc,1\n")
    fails(["data", "import", src, "--out", tmp_path / "ds", "--label", "y"],
          f"{src}: line 3, column 'b': not a number: 'abc'")
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("options, fragment", [
    ({"task": "binary"}, "line 3: label 0.5 is not an integer class"),
    ({"task": "multiclass", "classes": 3}, "line 3: label 0.5 is not an integer class"),
    ({"classes": 4}, "--classes 4 does not fit regression"),
])
def test_non_integer_labels_for_classification(tmp_path, options, fragment):
    src = tmp_path / "in.csv"
    src.write_text("a,y\n1,1\n2,0.5\n3,2\n")
    raises(import_dataset, src, tmp_path / "ds", label="y", **options,
           fragments=[str(src), fragment])


def test_labels_outside_the_given_classes(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a,y\n1,1\n2,0\n3,4\n4,2\n")
    raises(import_dataset, src, tmp_path / "ds", label="y", classes=3,
           fragments=[str(src), "line 4: label 4 is out of range for multiclass (0..2)"])
    raises(import_dataset, src, tmp_path / "ds", label="y", task="binary",
           fragments=["line 4: label 4 is out of range for binary (0..1)"])
    raises(import_dataset, src, tmp_path / "ds", label="y", task="multiclass", classes=1,
           fragments=["multiclass needs at least 2 classes"])


def test_missing_and_unreadable_inputs(tmp_path):
    out = tmp_path / "ds"
    fails(["data", "import", tmp_path / "nope.csv", "--out", out, "--label", "y"],
          "nope.csv: no such file")
    (tmp_path / "dir.csv").mkdir()
    raises(import_dataset, tmp_path / "dir.csv", out, label="y",
           fragments=["dir.csv: is a directory"])
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"a,y\n1,0\n\xff\xfe\x00garbage\n")
    raises(import_dataset, binary, out, label="y",
           fragments=["binary.csv: line 3: not UTF-8 text (byte 0xff"])
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.csv"
        locked.write_text("a,y\n1,0\n")
        locked.chmod(0)
        raises(import_dataset, locked, out, label="y", fragments=["locked.csv: permission"])
    raises(import_dataset, tmp_path / "nope.npy", out, labels=tmp_path / "y.npy",
           fragments=["nope.npy: no such file"])
    np.save(tmp_path / "X.npy", np.ones((3, 2)))
    raises(import_dataset, tmp_path / "X.npy", out, labels=tmp_path / "nope.npy",
           fragments=["nope.npy: no such file"])
    assert not out.exists()


def test_wrong_options_for_the_input_type(tmp_path):
    out = tmp_path / "ds"
    (tmp_path / "in.csv").write_text("a,y\n1,0\n")
    np.save(tmp_path / "X.npy", np.ones((3, 2)))
    np.savez(tmp_path / "d.npz", X=np.ones((3, 2)), y=np.zeros(3))
    (tmp_path / "in.txt").write_text("a,y\n1,0\n")
    fails(["data", "import", tmp_path / "in.csv", "--out", out],
          "in.csv: a CSV input needs --label")
    raises(import_dataset, tmp_path / "X.npy", out, fragments=["X.npy: an .npy input needs "
                                                               "--labels"])
    raises(import_dataset, tmp_path / "d.npz", out, label="y",
           fragments=["d.npz: --label is for CSV input"])
    raises(import_dataset, tmp_path / "in.csv", out, label="y", labels=tmp_path / "X.npy",
           fragments=["in.csv: --labels is for .npy input"])
    raises(import_dataset, tmp_path / "in.txt", out, label="y",
           fragments=["in.txt: unsupported input type '.txt'"])
    raises(import_dataset, tmp_path / "in.csv", out, label="y", shards=0,
           fragments=["--shards must be >= 1, got 0"])
    assert not out.exists()


def test_bad_numpy_inputs(tmp_path):
    out = tmp_path / "ds"
    X, y = np.ones((5, 3)), np.array([0, 1, 0, 1, 1])

    def npy(name, array):
        np.save(tmp_path / name, array)

    def pair(x_name, y_name, *fragments, **options):
        raises(import_dataset, tmp_path / x_name, out, labels=tmp_path / y_name, **options,
               fragments=fragments)

    npy("X.npy", X)
    npy("y.npy", y)
    npy("short.npy", y[:4])
    pair("X.npy", "short.npy", "short.npy: 4 labels for 5 rows")
    Xn = X.copy()
    Xn[3, 1] = np.nan
    npy("Xnan.npy", Xn)
    pair("Xnan.npy", "y.npy", "Xnan.npy: row 3, column 1: feature value is NaN")
    npy("ynan.npy", np.array([0, 1, np.inf, 0, 1]))
    pair("X.npy", "ynan.npy", "ynan.npy: row 2, label: label inf")
    npy("y7.npy", np.array([0, 1, 7, 0, 1]))
    pair("X.npy", "y7.npy", "y7.npy: row 2: label 7 is out of range for binary", task="binary")
    npy("flat.npy", np.ones(5))
    pair("flat.npy", "y.npy", "flat.npy: features must be a 2-D array")
    npy("y2d.npy", np.ones((5, 2)))
    pair("X.npy", "y2d.npy", "y2d.npy: labels must be a 1-D array")
    npy("empty.npy", np.ones((0, 3)))
    npy("y0.npy", np.ones(0))
    pair("empty.npy", "y0.npy", "empty.npy: empty input: 0 rows")
    npy("text.npy", np.array([["a", "b"]] * 5))
    pair("text.npy", "y.npy", "text.npy: features must be numbers")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    pair("junk.npy", "y.npy", "junk.npy: not a readable .npy file")
    truncated = tmp_path / "trunc.npy"
    truncated.write_bytes((tmp_path / "X.npy").read_bytes()[:-20])
    pair("trunc.npy", "y.npy", "trunc.npy: not a readable .npy file")
    np.savez(tmp_path / "noy.npz", X=X, labels=y)
    raises(import_dataset, tmp_path / "noy.npz", out,
           fragments=["noy.npz: no array 'y' in the archive (it has: X, labels)"])
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    fails(["data", "import", tmp_path / "junk.npz", "--out", out],
          "junk.npz: not a readable .npz")
    assert not out.exists() and leftovers(tmp_path) == []


# -- atomic output ------------------------------------------------------------------------------

def make(out, seed=0, force=False):
    """A small dataset to break or replace (made in-process: synth has its own tests)."""
    return make_synthetic(out, samples=40, features=3, classes=2, shards=2, seed=seed,
                          force=force)


def test_existing_out_is_refused_unless_force(tmp_path):
    out = tmp_path / "ds"
    make(out, 1)
    before = (out / "manifest.json").read_text()
    fails(["data", "synth", "--out", out, "--samples", 10, "--features", 2],
          str(out), "already exists (use --force")
    assert (out / "manifest.json").read_text() == before
    check(run_cli(["data", "synth", "--out", out, "--samples", 40, "--features", 3,
                   "--seed", 2, "--force"]))
    after = json.loads((out / "manifest.json").read_text())
    assert after["source"]["seed"] == 2 and leftovers(tmp_path) == []
    lines = check(run_cli(["data", "inspect", out, "--verify"])).stdout.splitlines()
    assert lines[-2].split() == ["train", "40", "1"]  # the new dataset's one shard
    assert lines[-1].startswith("verified  1 shards")


def test_force_never_replaces_something_that_is_not_a_dataset(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    fails(["data", "synth", "--out", precious, "--samples", 10, "--features", 2, "--force"],
          str(precious), "is not an hpctrain dataset")
    assert (precious / "thesis.tex").read_text() == "years of work"
    (tmp_path / "file").write_text("x")
    raises(make, tmp_path / "file", force=True, fragments=["file: exists and is not an"])
    (tmp_path / "empty").mkdir()
    make(tmp_path / "empty", force=True)  # an empty directory may be filled
    with open_dataset(tmp_path / "empty") as ds:
        assert ds.rows("train") == 40
    raises(make, tmp_path / "home", force=True, fragments=["is not an hpctrain dataset"])


def test_failed_force_keeps_the_old_dataset(tmp_path):
    out = tmp_path / "ds"
    make(out, 3)
    before = (out / "manifest.json").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,y\n1,0\n2,x\n")
    fails(["data", "import", bad, "--out", out, "--label", "y", "--force"], "line 3")
    assert (out / "manifest.json").read_text() == before
    assert verify_dataset(out) == 2
    assert leftovers(tmp_path) == []


def test_failure_while_writing_leaves_nothing_behind(tmp_path):
    """An error after some shards are written: the temporary directory goes, the old stays."""
    out = tmp_path / "ds"
    make(out, 4)
    before = (out / "manifest.json").read_text()

    def blocks():
        yield np.ones((30, 3), np.float32), np.zeros(30)
        raise InputError("row 30: broken", path="source.bin")

    with pytest.raises(InputError, match="row 30: broken"):
        write_dataset(out, blocks(), rows=60, features=3, task="binary", classes=2,
                      shards=4, force=True)
    assert (out / "manifest.json").read_text() == before and leftovers(tmp_path) == []
    with pytest.raises(InputError, match="expected 60 rows, read 30: the input changed"):
        write_dataset(tmp_path / "new", iter([(np.ones((30, 3)), np.zeros(30))]), rows=60,
                      features=3, task="binary", classes=2, source="in.csv")
    too_many = iter([(np.ones((30, 3)), np.zeros(30))] * 3)
    with pytest.raises(InputError, match="in.csv: more rows than counted: the input changed"):
        write_dataset(tmp_path / "new", too_many, rows=60, features=3, task="binary",
                      classes=2, source="in.csv")
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []
