"""Untrusted input: CSVs as other tools write them and datasets edited by hand or by a tool.

Every case is one line `hpctrain: error: FILE: where: what` and exit status 2, nothing
half-written, never a traceback, a hang or a silently wrong dataset. Each kind goes once
through the real command (a subprocess, bounded in time); variations call the same
functions in-process, as in test_data_errors.py (whose helpers this file uses).
"""

import json
import os
import shutil
import tracemalloc

import h5py
import helpers
import numpy as np
import pytest
from helpers import check, run_cli
from test_data_errors import leftovers, make, raises

from hpctrain.data import open_dataset
from hpctrain.data.csv_source import CHUNK_CHARS, MAX_LINE_CHARS, CsvSource
from hpctrain.data.format import sha256_file
from hpctrain.data.importers import import_dataset
from hpctrain.data.labels import MAX_LABEL_NAMES
from hpctrain.data.verify import verify_dataset

TIMEOUT = 120  # seconds for any one command: these all fail (or finish) in a few


def fails(args, *fragments):
    return helpers.fails(args, *fragments, timeout=TIMEOUT)


def succeeds(args):
    return check(run_cli(args, timeout=TIMEOUT))


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


def read_all(out, split="train"):
    with open_dataset(out) as ds:
        return ds.read(split, 0, ds.rows(split))


# -- 1. a pandas index column ------------------------------------------------------------------

PANDAS = ",a,b,y\n0,1.5,2,0\n1,3,4,1\n2,5,6,1\n"  # pandas' DataFrame.to_csv(path)


def test_pandas_index_column_is_refused_with_a_hint(tmp_path):
    src = tmp_path / "frame.csv"
    src.write_text(PANDAS)
    out = tmp_path / "ds"
    fails(["data", "import", src, "--out", out, "--label", "y"],
          f"{src}: line 1: the first column has no name", "row index",
          "--index-col ''", "index=False")
    src.write_text("Unnamed: 0,a,b,y\n0,1.5,2,0\n1,3,4,1\n")  # read back and written again
    raises(import_dataset, src, out, label="y",
           fragments=[f"{src}: line 1: the first column is named 'Unnamed: 0'",
                      "--index-col 'Unnamed: 0'"])
    assert not out.exists() and leftovers(tmp_path) == []


def test_index_col_drops_the_column(tmp_path):
    src = tmp_path / "frame.csv"
    src.write_text(PANDAS)
    out = tmp_path / "ds"
    succeeds(["data", "import", src, "--out", out, "--label", "y", "--index-col", ""])
    X, y = read_all(out)
    np.testing.assert_array_equal(X, np.array([[1.5, 2], [3, 4], [5, 6]], np.float32))
    np.testing.assert_array_equal(y, [0, 1, 1])
    m = manifest(out)
    assert m["features"] == 2 and m["feature_names"] == ["a", "b"]
    # the index is never parsed: text (ids, dates, quoted commas) is fine; the row still
    # needs the header's number of values
    src.write_text('id,a,y\n"p,001",1,0\npatient-2,2,1\n2024-01-03,3,0\n')
    import_dataset(src, tmp_path / "ids", label="y", index_col="id")
    np.testing.assert_array_equal(read_all(tmp_path / "ids")[0], [[1], [2], [3]])
    src.write_text("id,a,y\nx,1,0\ny,2\n")
    raises(import_dataset, src, tmp_path / "r", label="y", index_col="id",
           fragments=["line 3: 2 values, the header has 3 (ragged row)"])
    # written twice by pandas: two index columns, both must be named to be dropped
    src.write_text(",Unnamed: 0,a,y\n0,0,1,0\n1,1,2,1\n")
    raises(import_dataset, src, tmp_path / "r", label="y", index_col="",
           fragments=["line 1: the first feature column (column 2) is named 'Unnamed: 0'",
                      "--index-col 'Unnamed: 0'"])
    import_dataset(src, tmp_path / "twice", label="y", index_col=["", "Unnamed: 0"])
    assert manifest(tmp_path / "twice")["feature_names"] == ["a"]
    # a MultiIndex: one empty name per level, all dropped by one --index-col ''
    src.write_text(",,a,y\nx,0,1,0\ny,1,2,1\n")
    import_dataset(src, tmp_path / "multi", label="y", index_col="")
    assert manifest(tmp_path / "multi")["feature_names"] == ["a"]


def test_index_col_mistakes(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,a,y\n0,1,0\n1,2,1\n")
    raises(import_dataset, src, tmp_path / "ds", label="y", index_col="ID",
           fragments=[f"{src}: no column 'ID' (--index-col) in the header",
                      "did you mean 'id'?", "columns: id, a, y"])
    raises(import_dataset, src, tmp_path / "ds", label="y", index_col="y",
           fragments=["--index-col 'y' is the label column"])
    raises(import_dataset, src, tmp_path / "ds", label="y", index_col=["id", "a"],
           fragments=["no feature columns besides the label"])
    np.savez(tmp_path / "d.npz", X=np.ones((3, 2)), y=np.zeros(3))
    raises(import_dataset, tmp_path / "d.npz", tmp_path / "ds", index_col="id",
           fragments=["d.npz: --index-col is for CSV input"])


# -- 2. a label column that is not there ------------------------------------------------------

def test_missing_label_suggests_the_close_match_and_lists_every_column(tmp_path):
    names = [f"feature_{i}" for i in range(30)] + ["target"]
    src = tmp_path / "wide.csv"
    src.write_text(",".join(names) + "\n" + ",".join(["1"] * 31) + "\n")
    line = fails(["data", "import", src, "--out", tmp_path / "ds", "--label", "Target"],
                 f"{src}: no label column 'Target' in the header; did you mean 'target'?",
                 "(31 columns: feature_0, feature_1,", "feature_29, target)")
    assert "..." not in line
    raises(import_dataset, src, tmp_path / "ds", label="colour",
           fragments=["no label column 'colour' in the header (31 columns:"])
    raises(import_dataset, src, tmp_path / "ds", label="TARGET",
           fragments=["did you mean 'target'?"])


# -- 3. class names as labels -----------------------------------------------------------------

def test_string_labels_need_label_map(tmp_path):
    src = tmp_path / "cancer.csv"
    src.write_text("radius,texture,diagnosis\n1.5,2,malignant\n3,4,benign\n")
    fails(["data", "import", src, "--out", tmp_path / "ds", "--label", "diagnosis"],
          f"{src}: line 2, column 'diagnosis': label 'malignant' is not a number",
          "--label-map auto")
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []


def test_label_map_auto_maps_sorted_names_to_class_ids(tmp_path):
    src = tmp_path / "cancer.csv"
    src.write_text('radius,diagnosis\n1,malignant\n2, benign\n3,"malignant"\n\n4,benign \n')
    out = tmp_path / "ds"
    proc = succeeds(["data", "import", src, "--out", out, "--label", "diagnosis",
                     "--label-map", "auto"])
    assert "task      binary" in proc.stdout
    m = manifest(out)
    assert (m["task"], m["classes"]) == ("binary", 2)
    assert m["extra"]["label_names"] == ["benign", "malignant"]
    assert m["label_name"] == "diagnosis"
    X, y = read_all(out)
    np.testing.assert_array_equal(y, [1, 0, 1, 0])
    np.testing.assert_array_equal(X[:, 0], [1, 2, 3, 4])
    with open_dataset(out) as ds:  # the reader accepts what the importer wrote
        assert ds.manifest["extra"]["label_names"] == ["benign", "malignant"]


def test_label_map_across_chunks_and_splits(tmp_path):
    rng = np.random.default_rng(7)
    names = np.array(["setosa", "versicolor", "virginica"])
    codes = rng.integers(0, 3, 500)
    X = rng.standard_normal((500, 2))
    src = tmp_path / "iris.csv"
    src.write_text("a,b,species\n" + "".join(
        f"{float(X[i, 0])!r},{float(X[i, 1])!r},{names[codes[i]]}\n" for i in range(500)))
    out = tmp_path / "ds"
    import_dataset(src, out, label="species", label_map="auto", chunk_rows=37,
                   val_fraction=0.2, shards=3)
    m = manifest(out)
    assert (m["task"], m["classes"]) == ("multiclass", 3)
    assert m["extra"]["label_names"] == names.tolist()
    from hpctrain.data.splits import plan_splits

    plan, _ = plan_splits(500, 0.2, 0.0, seed=0)
    for code, split in ((0, "train"), (1, "val")):
        Xs, ys = read_all(out, split)
        np.testing.assert_array_equal(ys, codes[plan == code])
        np.testing.assert_array_equal(Xs, X[plan == code].astype(np.float32))


def test_label_map_sorts_numbers_by_value(tmp_path):
    src = tmp_path / "grades.csv"
    src.write_text("a,grade\n1,10\n2,2\n3,1\n4,2\n")
    import_dataset(src, tmp_path / "ds", label="grade", label_map="auto")
    assert manifest(tmp_path / "ds")["extra"]["label_names"] == ["1", "2", "10"]
    np.testing.assert_array_equal(read_all(tmp_path / "ds")[1], [2, 1, 0, 1])
    src.write_text("a,grade\n1,1\n2,1.0\n3,2\n")
    raises(import_dataset, src, tmp_path / "b", label="grade", label_map="auto",
           fragments=["column 'grade': labels '1' and '1.0' are the same number"])


def test_label_map_refusals(tmp_path):
    src = tmp_path / "in.csv"
    out = tmp_path / "ds"

    def refused(text, *fragments, **options):
        src.write_text(text)
        raises(import_dataset, src, out, label="y", label_map="auto",
               fragments=[str(src), *fragments], **options)

    refused("a,y\n1,yes\n2,yes\n", "column 'y' holds one class name ('yes')")
    refused("a,y\n1,yes\n2,\n", "line 3, column 'y': empty value")
    refused("a,y\n1,yes\n2,no\n", "--label-map auto makes classes",
            task="regression")
    refused("a,y\n1,a\n2,b\n3,c\n", "--task binary, but column 'y' holds 3 class names",
            task="binary")
    refused("a,y\n1,a\n2,b\n3,c\n", "--classes 4, but column 'y' holds 3 class names",
            classes=4)
    refused("a,y\n1,yes\n2," + "n" * 300 + "\n", "line 3, column 'y': a class name of 300 "
            "characters")
    many = "a,y\n" + "".join(f"{i},id{i}\n" for i in range(MAX_LABEL_NAMES + 5))
    refused(many, f"line {MAX_LABEL_NAMES + 2}, column 'y': more than {MAX_LABEL_NAMES} "
                  "distinct labels")
    assert not out.exists() and leftovers(tmp_path) == []
    np.savez(tmp_path / "d.npz", X=np.ones((3, 2)), y=np.zeros(3))
    raises(import_dataset, tmp_path / "d.npz", out, label_map="auto",
           fragments=["d.npz: --label-map is for CSV input"])


def test_bad_label_names_in_a_manifest(tmp_path):
    out = tmp_path / "ds"
    make(out)

    def edit(value):
        doc = manifest(out)
        doc["extra"] = {"label_names": value}
        (out / "manifest.json").write_text(json.dumps(doc))

    for value in (["no"], ["a", "a"], "ab", ["a", 1]):
        edit(value)
        raises(open_dataset, out, fragments=[f"{out / 'manifest.json'}: extra.label_names"])
    edit(["no", "yes"])
    open_dataset(out).close()


# -- 4. a line too long to be a CSV line -------------------------------------------------------

def test_overlong_line_is_refused_not_loaded(tmp_path):
    src = tmp_path / "one-line.csv"
    with open(src, "w") as f:
        f.write("a,y\n1,0\n1," + " " * (2 << 20) + "0\n3,1\n")  # a 2 MiB line 3
    fails(["data", "import", src, "--out", tmp_path / "ds", "--label", "y"],
          f"{src}: line 3: longer than {MAX_LINE_CHARS} characters")
    with open(src, "w") as f:  # no line ending at all: one 2 MiB header
        f.write("a" * (2 << 20))
    raises(import_dataset, src, tmp_path / "ds", label="y",
           fragments=[f"{src}: line 1: longer than {MAX_LINE_CHARS} characters"])
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []


def test_overlong_line_costs_no_memory(tmp_path):
    src = tmp_path / "huge.csv"
    with open(src, "w") as f:
        f.write("a,y\n1,0\n")
        f.write("7" * (32 << 20) + ",1\n")  # 32 MiB in one line
    tracemalloc.start()
    try:
        with pytest.raises(Exception, match="line 3: longer than"):
            CsvSource(src, "y").scan()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak} bytes for a 32 MiB line"


def test_padded_lines_keep_chunks_bounded(tmp_path):
    """Lines under the limit but full of spaces: a chunk stops at a size, not only a count."""
    src = tmp_path / "padded.csv"
    pad = " " * (MAX_LINE_CHARS // 2)
    with open(src, "w") as f:
        f.write("a,y\n")
        for i in range(120):  # 60 MiB in all, 0.5 MiB per line
            f.write(f"{i},{pad}{i % 2}\n")
    tracemalloc.start()
    try:
        rows, _ = CsvSource(src, "y").scan()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == 120
    assert peak < 3 * CHUNK_CHARS, f"peak {peak} bytes for 120 lines of 0.5 MiB"


def test_huge_cell_is_one_line_error(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a,y\n1,0\n" + "x" * 200_000 + ",1\n")  # beyond the csv module's limit
    fails(["data", "import", src, "--out", tmp_path / "ds", "--label", "y"],
          f"{src}: line 3: not a CSV row (field larger than field limit")
    src.write_text("a" * 200_000 + ",y\n1,0\n")
    raises(import_dataset, src, tmp_path / "ds", label="y",
           fragments=[f"{src}: line 1:"])


# -- 5. non-UTF-8 text ------------------------------------------------------------------------

def test_not_utf8_names_the_right_line(tmp_path):
    src = tmp_path / "latin1.csv"
    src.write_bytes(b"a,y\n1,0\n2,1\n3,0\n4\xe9,1\n5,0\n")
    fails(["data", "import", src, "--out", tmp_path / "ds", "--label", "y"],
          f"{src}: line 5: not UTF-8 text (byte 0xe9", "UTF-8")
    lines = [b"a,y\n"] + [b"%d,%d\n" % (i, i % 2) for i in range(5000)]
    lines[3001] = b"\xff\xfe,1\n"
    src.write_bytes(b"".join(lines))
    raises(import_dataset, src, tmp_path / "ds", label="y",
           fragments=[f"{src}: line 3002: not UTF-8 text (byte 0xff"])
    src.write_bytes(b"a,\xe9t\xe9,y\n1,2,0\n")
    raises(import_dataset, src, tmp_path / "ds", label="y",
           fragments=[f"{src}: line 1: not UTF-8 text (byte 0xe9"])
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []


# -- 6, 7. shards whose values the model cannot use --------------------------------------------

def edit_shard(path, name, index, value):
    with h5py.File(path, "r+") as f:
        f[name][index] = value


def test_label_out_of_range_in_a_shard_is_named_when_read(tmp_path):
    out = tmp_path / "ds"
    make(out)  # binary, 40 rows in two shards of 20
    shard = out / "train" / "shard-00001.h5"
    edit_shard(shard, "y", 3, 7)
    fails(["train", "--data", out, "--out", tmp_path / "run", "--steps", 3],
          f"{shard}: row 3: label 7 is out of range for binary (0..1)")
    edit_shard(shard, "y", 3, 0)
    edit_shard(shard, "y", 19, -1)
    with open_dataset(out) as ds:
        raises(ds.read, "train", 0, 40, fragments=[f"{shard}: row 19: label -1 is out of "
                                                   "range for binary (0..1)"])
        ds.read("train", 0, 39)  # rows that do not hold it read fine
    # edited with its checksum updated: --verify, which reads every row, still finds it
    doc = manifest(out)
    doc["splits"]["train"]["shards"][1]["sha256"] = sha256_file(shard)
    (out / "manifest.json").write_text(json.dumps(doc))
    fails(["data", "inspect", out, "--verify"], f"{shard}: row 19: label -1 is out of range")
    src = tmp_path / "m.npz"
    np.savez(src, X=np.ones((6, 2)), y=np.array([0, 1, 2, 3, 2, 1]))
    import_dataset(src, tmp_path / "multi")
    multi = tmp_path / "multi" / "train" / "shard-00000.h5"
    edit_shard(multi, "y", 4, 4)
    with open_dataset(tmp_path / "multi") as ds:
        raises(ds.read_rank, "train", 0, 1, fragments=[f"{multi}: row 4: label 4 is out of "
                                                       "range for multiclass (0..3)"])


def test_non_finite_features_in_a_shard_are_named_when_read(tmp_path):
    out = tmp_path / "ds"
    make(out)
    shard = out / "train" / "shard-00000.h5"
    edit_shard(shard, "X", (5, 2), np.nan)
    fails(["train", "--data", out, "--out", tmp_path / "run", "--steps", 3],
          f"{shard}: row 5, column 2: feature value nan is not finite")
    edit_shard(shard, "X", (5, 2), 0.0)
    edit_shard(shard, "X", (11, 0), -np.inf)
    with open_dataset(out) as ds:
        raises(ds.read, "train", 10, 30, fragments=[f"{shard}: row 11, column 0: feature "
                                                    "value -inf is not finite"])
        ds.read("train", 12, 40)
    # large but finite values are not mistaken for infinities
    edit_shard(shard, "X", (11, 0), 3e38)
    edit_shard(shard, "X", (12, 0), 3e38)
    with open_dataset(out) as ds:
        X, _ = ds.read("train", 0, 40)
        assert X[11, 0] == X[12, 0] == np.float32(3e38)
    src = tmp_path / "r.npz"
    np.savez(src, X=np.ones((4, 2)), y=np.array([0.5, 1.5, 2.5, 3.5]))
    import_dataset(src, tmp_path / "reg")
    reg = tmp_path / "reg" / "train" / "shard-00000.h5"
    edit_shard(reg, "y", 2, np.inf)
    with open_dataset(tmp_path / "reg") as ds:
        raises(ds.read, "train", 0, 4, fragments=[f"{reg}: row 2: target inf is not finite"])


# -- 8. standardization that cannot be applied --------------------------------------------------

@pytest.mark.parametrize("key, value, fragment", [
    ("mean", float("nan"), "standardization: mean[1] is NaN"),
    ("mean", float("inf"), "standardization: mean[1] is Infinity"),
    ("std", float("nan"), "standardization: std[1] is NaN"),
    ("std", float("-inf"), "standardization: std[1] is -Infinity"),
    ("std", float("inf"), "standardization: std[1] is Infinity"),
    ("std", 0.0, "standardization: std[1] is 0.0, not > 0"),
    ("std", -2.0, "standardization: std[1] is -2.0, not > 0"),
    ("std", True, "standardization: std[1] is true"),
])
def test_non_finite_standardization_is_refused(tmp_path, key, value, fragment):
    src = tmp_path / "d.npz"
    np.savez(src, X=np.random.default_rng(0).standard_normal((20, 3)), y=np.zeros(20))
    out = tmp_path / "ds"
    import_dataset(src, out, standardize=True)
    doc = manifest(out)
    doc["standardization"][key][1] = value
    (out / "manifest.json").write_text(json.dumps(doc))  # json writes NaN, Infinity
    raises(open_dataset, out, fragments=[f"{out / 'manifest.json'}: {fragment}"])
    if key == "mean" and value != value:
        fails(["data", "inspect", out], "manifest.json: standardization: mean[1] is NaN")


# -- 9. shards outside the dataset directory ---------------------------------------------------

def test_shard_symlink_out_of_the_dataset_is_refused(tmp_path):
    out = tmp_path / "ds"
    make(out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shard = out / "train" / "shard-00001.h5"
    shutil.move(shard, elsewhere / "x.h5")
    os.symlink(elsewhere / "x.h5", shard)
    fails(["data", "inspect", out],
          f"{shard}: the shard file train/shard-00001.h5 resolves outside the dataset "
          f"directory (to {elsewhere / 'x.h5'})")
    raises(verify_dataset, out, fragments=["train/shard-00001.h5 resolves outside"])
    # a whole split directory linked elsewhere is the same thing
    shard.unlink()
    shutil.move(elsewhere / "x.h5", shard)
    shutil.move(out / "train", elsewhere / "train")
    os.symlink(elsewhere / "train", out / "train")
    raises(open_dataset, out, fragments=["train/shard-00000.h5 resolves outside the dataset"])


def test_links_that_stay_inside_are_fine(tmp_path):
    real = tmp_path / "real"
    make(real)
    (tmp_path / "alias").symlink_to(real)  # the dataset directory itself may be a link
    assert verify_dataset(tmp_path / "alias") == 2
    shard = real / "train" / "shard-00000.h5"
    (real / "store").mkdir()
    shutil.move(shard, real / "store" / "s0.h5")
    os.symlink("../store/s0.h5", shard)  # relative, inside the dataset
    with open_dataset(tmp_path / "alias") as ds:
        assert len(ds.read("train", 0, 40)[0]) == 40


def test_manifest_paths_out_of_the_dataset_are_refused(tmp_path):
    out = tmp_path / "ds"
    make(out)
    good = manifest(out)
    for file in ("/etc/passwd", "../ds/train/shard-00000.h5", "train/../../x.h5"):
        doc = json.loads(json.dumps(good))
        doc["splits"]["train"]["shards"][0]["file"] = file
        (out / "manifest.json").write_text(json.dumps(doc))
        raises(open_dataset, out, fragments=[f"{out / 'manifest.json'}: split 'train': bad "
                                             f"shard file name {file!r}"])
