"""`mpiexec -n P hpctrain predict --data DIR --split S --out OUT.npy|.h5|.csv`: each rank its
own rows, one output in row order equal to the model's predictions of the whole split; a rank
that fails or is killed mid-way leaves no output and ends the job within seconds; bad input is
one line, exit 2, nothing written. Real mpiexec, real HDF5 files."""

import csv
import os
import time

import h5py
import numpy as np
import pytest
from helpers import check, child_env, own_lines, run_cli, run_mpi
from train_util import checkpoints, make_data

TIMEOUT = 120  # seconds per command; these take a few


def trained(root, classes, features=6, samples=2300):
    """(dataset, checkpoint) of a short training run; the test split has uneven rows per
    rank for 2 and 3 ranks (690 rows)."""
    data = make_data(root / f"data{classes}", samples=samples, features=features,
                     classes=classes, shards=3, test=0.3)
    run = str(root / f"run{classes}")
    check(run_cli(["train", "--data", data, "--out", run, "--steps", "6", "--hidden", "8"],
                  timeout=TIMEOUT))
    return data, checkpoints(run)[-1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict-data")
    return {c: trained(root, c) for c in (2, 3, 0)}  # binary, multiclass, regression


def expected(data, checkpoint, split="test"):
    from hpctrain import checkpoint as ckpt
    from hpctrain.data import open_dataset
    from hpctrain.model import MLP

    state = ckpt.load(checkpoint)
    dataset = open_dataset(data)
    X, _ = dataset.read(split, 0, dataset.rows(split))
    return MLP.from_spec(state.model_spec).predict(state.params, X)


def same_predictions(got, want):
    """Row for row to float32 rounding, not bit for bit: each rank predicts its own blocks
    of rows, and BLAS picks its kernels (and their order of summing) by a block's row
    count, so a row's last bit can differ from one prediction over all rows (seen: 3 of 690
    rows, 1 ulp). Rows out of order differ by far more than this tolerance."""
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


def read_back(path):
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    if path.endswith(".h5"):
        with h5py.File(path, "r") as f:
            return f["predictions"][...]
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    return table


def predict_mpi(ranks, data, checkpoint, out, *flags, env=None):
    return run_mpi(ranks, ["predict", "--checkpoint", checkpoint, "--data", data,
                           "--split", "test", "--out", out, "--block-rows", "50", *flags],
                   timeout=TIMEOUT, env=env)


@pytest.mark.parametrize("ranks,classes,suffix", [
    (2, 3, ".npy"), (3, 3, ".h5"), (3, 3, ".csv"), (2, 2, ".h5"), (3, 0, ".npy"), (4, 2, ".csv"),
])
def test_every_rank_writes_its_rows_into_one_file_in_row_order(tmp_path, models, ranks,
                                                               classes, suffix):
    data, checkpoint = models[classes]
    out = str(tmp_path / f"predictions{suffix}")
    proc = check(predict_mpi(ranks, data, checkpoint, out))
    assert f"wrote 690 predictions to {out} ({ranks} rank(s)" in proc.stdout
    want = expected(data, checkpoint)
    got = read_back(out)
    if suffix == ".csv":
        header, rows = got[0], got[1:]
        assert header == ["prediction", *(f"p_{k}" for k in range(max(classes, 2)))]
        assert len(rows) == len(want)
        probs = np.array([r[1:] for r in rows], dtype=np.float32)
        p = want if classes > 2 else np.column_stack([1 - want, want])
        same_predictions(probs, p.astype(np.float32))
        ids = p.argmax(axis=1) if classes > 2 else (want >= 0.5).astype(int)
        assert [int(r[0]) for r in rows] == ids.tolist()
    else:
        same_predictions(got, want)
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(out)]  # no temp file left


@pytest.mark.parametrize("kind", ["raise", "kill"])
def test_a_rank_failing_mid_way_leaves_no_output_and_ends_the_job(tmp_path, models, kind):
    data, checkpoint = models[3]
    out = str(tmp_path / "predictions.csv")
    started = time.monotonic()
    proc = predict_mpi(3, data, checkpoint, out, env=child_env(HPCTRAIN_FAULT=f"{kind}@1:2"))
    took = time.monotonic() - started
    assert proc.returncode != 0, proc.stdout
    assert not os.path.exists(out)
    assert took < 60, f"the job took {took:.0f} s to end"
    if kind == "raise":  # the failing rank removed every temporary file before aborting
        assert os.listdir(tmp_path) == []
        assert "rank 1: RuntimeError: injected fault at step 2" in proc.stderr
    check(predict_mpi(2, data, checkpoint, out))  # removes what a killed job left behind
    assert os.listdir(tmp_path) == ["predictions.csv"]


def test_a_checkpoint_that_does_not_fit_the_dataset_is_one_line_and_no_file(tmp_path, models):
    data, _ = models[3]
    _, other = models[0]  # a regression model
    out = str(tmp_path / "predictions.h5")
    proc = predict_mpi(2, data, other, out)
    assert proc.returncode == 2, proc.stderr
    lines = own_lines(proc.stderr)
    assert len(lines) == 1 and "checkpoint is for regression data" in lines[0], proc.stderr
    assert os.listdir(tmp_path) == []


def test_an_existing_output_is_refused_unless_forced(tmp_path, models):
    data, checkpoint = models[2]
    out = tmp_path / "predictions.npy"
    out.write_bytes(b"keep me")
    proc = predict_mpi(2, data, checkpoint, str(out))
    assert proc.returncode == 2 and "output exists; use --force" in proc.stderr
    assert out.read_bytes() == b"keep me"
    check(predict_mpi(2, data, checkpoint, str(out), "--force"))
    same_predictions(np.load(out), expected(data, checkpoint))


@pytest.mark.parametrize("args,why", [
    (["--input", "x.npy", "--data", "d"], "give exactly one of --input FILE and --data DIR"),
    (["--data", "d", "--out", "p.parquet"], "output must be .npy or .h5 or .csv"),
])
def test_bad_usage_is_one_line(tmp_path, models, args, why):
    data, checkpoint = models[2]
    args = [data if a == "d" else str(tmp_path / a) if "." in a else a for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "p.npy")]
    proc = run_cli(["predict", "--checkpoint", checkpoint, *args], timeout=TIMEOUT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and why in lines[0], proc.stderr
    assert not any(n.startswith("p.") for n in os.listdir(tmp_path))
