"""`hpctrain predict`: CSV columns matched by name, the label column dropped, a headed output,
bad input named with exit 2 and no output file, a run directory as --checkpoint."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from helpers import check, run_cli
from train_util import checkpoints, make_data

FEATURES = ["age", "income", "height", "score", "visits"]
LABEL = "churned"
# The label sits among the features in the imported file, as it often does in real exports.
COLUMNS = ["age", "income", LABEL, "height", "score", "visits"]
TIMEOUT = 120  # seconds per command: predict and a short training are far below this


def rows(n, seed=0):
    """Features on very different scales (so a column mix-up changes every prediction)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(18, 90, n), rng.uniform(1e4, 2e5, n),
                         rng.normal(170, 10, n), rng.normal(0, 1, n), rng.poisson(4, n)])
    y = ((X[:, 0] - 50) / 20 + (X[:, 1] - 1e5) / 5e4 + X[:, 3] > 0).astype(int)
    return X, y


def write_csv(path, header, table):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header is not None:
            w.writerow(header)
        w.writerows(table)
    return str(path)


def feature_table(X, names):
    """Rows of the named columns of X (plus an arbitrary extra column by its name)."""
    cols = {name: X[:, i] for i, name in enumerate(FEATURES)}
    cols[LABEL] = (X[:, 3] > 0).astype(int)
    cols["customer_id"] = np.arange(len(X)) + 1000
    return [[repr(float(cols[name][r])) if name not in (LABEL, "customer_id")
             else str(int(cols[name][r])) for name in names] for r in range(len(X))]


def train_run(data, run, *flags):
    check(run_cli(["train", "--data", data, "--out", run, "--steps", "8", "--batch-size", "32",
                   "--hidden", "8", *flags], timeout=TIMEOUT))
    return run


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """(run directory, its checkpoint) of a model trained on an imported, standardized CSV."""
    root = tmp_path_factory.mktemp("named")
    X, y = rows(300)
    table = [[repr(float(v)) for v in x[:2]] + [str(int(t))] + [repr(float(v)) for v in x[2:]]
             for x, t in zip(X, y, strict=True)]
    src = write_csv(root / "customers.csv", COLUMNS, table)
    data = str(root / "data")
    check(run_cli(["data", "import", src, "--out", data, "--label", LABEL, "--standardize"],
                  timeout=TIMEOUT))
    run = train_run(data, str(root / "run"))
    return run, checkpoints(run)[-1]


def predict(checkpoint, input_path, out, *flags):
    return run_cli(["predict", "--checkpoint", checkpoint, "--input", input_path,
                    "--out", out, *flags], timeout=TIMEOUT)


def read_output(path):
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    return table[0], table[1:]


def expect_bad_input(proc, out, *words):
    """Exit 2, one `hpctrain: error:` line holding every word, and no output file."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("hpctrain: error:"), proc.stderr
    for word in words:
        assert word in line, line
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(os.path.dirname(out)) if f.endswith(".tmp")]


def expected_probabilities(checkpoint, X):
    """P(y = 1) of the checkpoint for raw rows X in training column order, computed here."""
    from hpctrain import checkpoint as ckpt
    from hpctrain.model import MLP
    from hpctrain.predict import standardize

    state = ckpt.load(checkpoint)
    Xs = standardize(np.ascontiguousarray(X, dtype=np.float32), state.config)
    return MLP.from_spec(state.model_spec).predict(state.params, Xs)


def test_reversed_column_order_gives_the_same_predictions(named, tmp_path):
    _, ckpt = named
    X, _ = rows(40, seed=1)
    same = write_csv(tmp_path / "same.csv", FEATURES, feature_table(X, FEATURES))
    back = write_csv(tmp_path / "back.csv", FEATURES[::-1], feature_table(X, FEATURES[::-1]))
    check(predict(ckpt, same, tmp_path / "p-same.csv"))
    check(predict(ckpt, back, tmp_path / "p-back.csv"))
    with open(tmp_path / "p-same.csv") as a, open(tmp_path / "p-back.csv") as b:
        assert a.read() == b.read()
    header, table = read_output(tmp_path / "p-back.csv")
    got = np.array([float(r[header.index("p_1")]) for r in table])
    np.testing.assert_allclose(got, expected_probabilities(ckpt, X), rtol=1e-5, atol=1e-7)


def test_label_column_is_dropped(named, tmp_path):
    _, ckpt = named
    X, _ = rows(30, seed=2)
    plain = write_csv(tmp_path / "plain.csv", FEATURES, feature_table(X, FEATURES))
    labelled = write_csv(tmp_path / "labelled.csv", COLUMNS, feature_table(X, COLUMNS))
    check(predict(ckpt, plain, tmp_path / "p-plain.csv"))
    check(predict(ckpt, labelled, tmp_path / "p-labelled.csv"))
    assert read_output(tmp_path / "p-plain.csv") == read_output(tmp_path / "p-labelled.csv")


def test_extra_column_is_ignored_with_a_warning(named, tmp_path):
    _, ckpt = named
    X, _ = rows(30, seed=3)
    plain = write_csv(tmp_path / "plain.csv", FEATURES, feature_table(X, FEATURES))
    names = ["customer_id", *FEATURES[::-1]]
    extra = write_csv(tmp_path / "extra.csv", names, feature_table(X, names))
    check(predict(ckpt, plain, tmp_path / "p-plain.csv"))
    proc = check(predict(ckpt, extra, tmp_path / "p-extra.csv"))
    assert "warning" in proc.stderr and "customer_id" in proc.stderr
    assert read_output(tmp_path / "p-plain.csv") == read_output(tmp_path / "p-extra.csv")


def test_missing_column_is_exit_2_naming_it(named, tmp_path):
    _, ckpt = named
    X, _ = rows(10, seed=4)
    names = [n for n in FEATURES if n != "income"]
    src = write_csv(tmp_path / "short.csv", names, feature_table(X, names))
    out = str(tmp_path / "p.csv")
    expect_bad_input(predict(ckpt, src, out), out, "short.csv", "'income'", "missing")


def test_an_output_in_a_missing_folder_is_exit_2_naming_it(named, tmp_path):
    _, ckpt = named
    X, _ = rows(10, seed=4)
    src = write_csv(tmp_path / "in.csv", FEATURES, feature_table(X, FEATURES))
    out = str(tmp_path / "missing_dir" / "p.npy")
    proc = predict(ckpt, src, out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing_dir" in lines[0] and "no such folder" in lines[0], lines
    assert not os.path.exists(tmp_path / "missing_dir")


def test_headerless_csv_with_known_names_is_exit_2(named, tmp_path):
    _, ckpt = named
    X, _ = rows(10, seed=5)
    src = write_csv(tmp_path / "bare.csv", None, feature_table(X, FEATURES))
    out = str(tmp_path / "p.csv")
    expect_bad_input(predict(ckpt, src, out), out, "bare.csv", "header", "age")


def test_non_numeric_value_names_line_and_column(named, tmp_path):
    _, ckpt = named
    X, _ = rows(10, seed=6)
    table = feature_table(X, FEATURES)
    table[2][FEATURES.index("height")] = "tall"
    src = write_csv(tmp_path / "bad.csv", FEATURES, table)
    out = str(tmp_path / "p.csv")
    expect_bad_input(predict(ckpt, src, out), out, "bad.csv", "line 4", "'height'", "tall")


def test_output_has_header_and_class_columns(named, tmp_path):
    _, ckpt = named
    X, _ = rows(25, seed=7)
    src = write_csv(tmp_path / "x.csv", FEATURES, feature_table(X, FEATURES))
    check(predict(ckpt, src, tmp_path / "p.csv"))
    header, table = read_output(tmp_path / "p.csv")
    assert header == ["prediction", "p_0", "p_1"]
    assert len(table) == 25
    p = np.array([[float(v) for v in r[1:]] for r in table])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert [int(r[0]) for r in table] == [int(q >= 0.5) for q in p[:, 1]]
    # .npy output: the model's array as before, here P(y = 1) per row
    check(predict(ckpt, src, tmp_path / "p.npy"))
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), p[:, 1], rtol=1e-6)


def test_predict_accepts_a_run_directory(named, tmp_path):
    run, ckpt = named
    X, _ = rows(12, seed=8)
    src = write_csv(tmp_path / "x.csv", FEATURES, feature_table(X, FEATURES))
    outputs = []
    for i, where in enumerate([ckpt, run, os.path.join(run, "checkpoints")]):
        check(predict(where, src, tmp_path / f"p{i}.csv"))
        outputs.append(read_output(tmp_path / f"p{i}.csv"))
    assert outputs[0] == outputs[1] == outputs[2]


def test_recorded_class_names_label_the_output(named, tmp_path):
    run, _ = named
    data = str(tmp_path / "data")
    with open(os.path.join(run, "config.json")) as f:
        shutil.copytree(json.load(f)["data"], data)
    manifest = os.path.join(data, "manifest.json")
    with open(manifest) as f:
        m = json.load(f)
    m["label_names"] = ["stays", "leaves"]  # what `data import --label-map auto` records
    with open(manifest, "w") as f:
        json.dump(m, f)
    renamed = train_run(data, str(tmp_path / "run"))
    X, _ = rows(20, seed=9)
    src = write_csv(tmp_path / "x.csv", FEATURES, feature_table(X, FEATURES))
    check(predict(renamed, src, tmp_path / "p.csv"))
    header, table = read_output(tmp_path / "p.csv")
    assert header == ["prediction", "p_stays", "p_leaves"]
    assert {r[0] for r in table} <= {"stays", "leaves"}
    assert all(r[0] == ("leaves" if float(r[2]) >= 0.5 else "stays") for r in table)


@pytest.mark.parametrize("classes,header", [
    (3, ["prediction", "p_0", "p_1", "p_2"]),
    (0, ["prediction"]),
])
def test_unnamed_features_are_positional(tmp_path, classes, header):
    data = make_data(tmp_path / "data", samples=200, features=4, classes=classes, shards=1)
    run = train_run(data, str(tmp_path / "run"))
    X = np.random.default_rng(0).normal(size=(15, 4))
    cells = [[repr(float(v)) for v in x] for x in X]
    bare = write_csv(tmp_path / "bare.csv", None, cells)
    headed = write_csv(tmp_path / "headed.csv", list("abcd"), cells)
    check(predict(run, bare, tmp_path / "p-bare.csv"))
    check(predict(run, headed, tmp_path / "p-headed.csv"))
    got = read_output(tmp_path / "p-bare.csv")
    assert got == read_output(tmp_path / "p-headed.csv")
    assert got[0] == header and len(got[1]) == 15
    # a header present must have the model's column count
    wide = write_csv(tmp_path / "wide.csv", list("abcde"), [[*r, "0"] for r in cells])
    out = str(tmp_path / "p-wide.csv")
    expect_bad_input(predict(run, wide, out), out, "wide.csv", "5 columns", "4")
