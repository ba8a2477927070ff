"""`hpctrain train / evaluate / predict / demo` on one rank: learning, resume, bad input."""

import json
import os

import h5py
import numpy as np
import pytest
from helpers import check, run_cli
from train_util import checkpoints, final_params, make_data, metrics, snapshot, summary


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("d") / "binary", samples=1200, features=9,
                     val=0.1, test=0.1)


def train(data, out, *flags):
    return run_cli(["train", "--data", data, "--out", out, "--log-every", "5", *flags])


@pytest.mark.parametrize("classes,flags", [
    (2, ["--hidden", "16", "--epochs", "8"]),
    (4, ["--hidden", "24,12", "--activation", "tanh", "--epochs", "8", "--lr", "3e-3"]),
    (0, ["--hidden", "16", "--activation", "sigmoid", "--optimizer", "sgd", "--lr", "0.02",
         "--epochs", "8"]),
])
def test_loss_falls_for_every_task(tmp_path, classes, flags):
    data = make_data(tmp_path / "data", samples=800, features=6, classes=classes, val=0.1)
    run = str(tmp_path / "run")
    check(train(data, run, "--batch-size", "32", *flags))
    lines = [m for m in metrics(run) if "loss" in m]
    assert lines[-1]["loss"] < 0.8 * lines[0]["loss"]
    vals = [m for m in metrics(run) if "val_loss" in m]
    assert len(vals) == 8 and vals[-1]["val_loss"] < vals[0]["val_loss"]
    s = summary(run)
    assert s["ranks"] == 1 and s["samples_per_s"] > 0 and s["steps"] == 8 * 23
    assert set(s["phase_times_s"]) == {"data", "compute", "allreduce", "update"}
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["data"] == data


def test_resume_matches_uninterrupted_run(binary, tmp_path):
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    check(train(binary, whole, "--steps", "30", "--batch-size", "40"))
    check(train(binary, split, "--steps", "12", "--batch-size", "40"))
    check(run_cli(["train", "--out", split, "--resume", "--steps", "30"]))
    np.testing.assert_array_equal(final_params(whole), final_params(split))
    assert [os.path.basename(p) for p in checkpoints(split)] == [
        "step-00000012.h5", "step-00000030.h5"]


def test_resume_skips_a_corrupted_newest_checkpoint(binary, tmp_path):
    run = str(tmp_path / "run")
    check(train(binary, run, "--steps", "10", "--checkpoint-every", "5", "--batch-size", "40"))
    newest = checkpoints(run)[-1]
    with h5py.File(newest, "r+") as f:
        f["params/layer0/W"][0, 0] += 1.0
    proc = check(run_cli(["train", "--out", run, "--resume", "--steps", "12"]))
    assert "checksum" in proc.stderr and os.path.basename(newest) in proc.stderr


def test_evaluate_and_predict(binary, tmp_path):
    run = str(tmp_path / "run")
    check(train(binary, run, "--steps", "20"))
    ckpt = checkpoints(run)[-1]
    proc = check(run_cli(["evaluate", "--data", binary, "--checkpoint", ckpt, "--json"]))
    result = json.loads(proc.stdout)
    assert result["rows"] == 120 and 0 <= result["accuracy"] <= 1 and result["loss"] > 0

    from hpctrain import checkpoint
    from hpctrain.data import open_dataset
    from hpctrain.model import MLP

    X, y = open_dataset(binary).read("test", 0, 5)
    np.save(tmp_path / "x.npy", X)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", header=",".join("abcdefghi"), comments="")
    state = checkpoint.load(ckpt)
    expected = MLP.from_spec(state.model_spec).predict(state.params, X)
    for name in ("x.npy", "x.csv"):
        out = str(tmp_path / f"pred-{name}")
        check(run_cli(["predict", "--checkpoint", ckpt, "--input", tmp_path / name,
                       "--out", out]))
        if out.endswith(".npy"):  # the model's array: P(y = 1) per row
            got = np.load(out)
        else:  # a header, then prediction, p_0, p_1 per row
            with open(out) as f:
                assert f.readline().strip() == "prediction,p_0,p_1"
            got = np.loadtxt(out, delimiter=",", skiprows=1)[:, 2]
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def expect_bad_input(proc, *words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("hpctrain: error:"), proc.stderr
    for word in words:
        assert word in line


@pytest.mark.parametrize("flags,words", [
    (["--batch-size", "0"], ["--batch-size"]),
    (["--lr", "-1"], ["--lr"]),
    (["--activation", "swish"], ["swish"]),
    (["--task", "regression"], ["task"]),
    (["--allreduce", "carrier-pigeon"], ["carrier-pigeon"]),
    (["--hidden", "8,x"], ["--hidden"]),
])
def test_bad_flags_exit_2_and_leave_the_run_alone(binary, tmp_path, flags, words):
    run = str(tmp_path / "run")
    check(train(binary, run, "--steps", "3"))
    before = snapshot(run)
    expect_bad_input(train(binary, run, "--force", *flags), *words)
    assert snapshot(run) == before


def test_existing_run_is_not_overwritten(binary, tmp_path):
    run = str(tmp_path / "run")
    check(train(binary, run, "--steps", "3"))
    before = snapshot(run)
    expect_bad_input(train(binary, run, "--steps", "3"), run, "--resume")
    assert snapshot(run) == before


def test_checkpoint_of_another_model_is_refused(binary, tmp_path):
    run = str(tmp_path / "run")
    check(train(binary, run, "--steps", "3"))
    before = snapshot(run)
    expect_bad_input(run_cli(["train", "--out", run, "--resume", "--hidden", "8"]),
                     "another model")
    assert snapshot(run) == before
    other = make_data(tmp_path / "other", samples=50, features=4)
    expect_bad_input(run_cli(["evaluate", "--data", other, "--checkpoint",
                              checkpoints(run)[-1]]), "features")


def test_corrupted_checkpoint_is_refused(binary, tmp_path):
    run = str(tmp_path / "run")
    check(train(binary, run, "--steps", "3"))
    ckpt = checkpoints(run)[-1]
    with h5py.File(ckpt, "r+") as f:
        f["optimizer"][sorted(f["optimizer"])[0]][0] += 1.0
    expect_bad_input(run_cli(["evaluate", "--data", binary, "--checkpoint", ckpt]),
                     "checksum", ckpt)
    with open(ckpt, "r+b") as f:
        f.truncate(200)
    expect_bad_input(run_cli(["evaluate", "--data", binary, "--checkpoint", ckpt]), ckpt)
    expect_bad_input(run_cli(["train", "--out", run, "--resume"]), "no good checkpoint")


def test_config_file_and_flags(binary, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\nhidden = "12"\nsteps = 4\nlr = 0.01\nbatch-size = 20\n')
    run = str(tmp_path / "run")
    check(train(binary, run, "--config", toml, "--lr", "0.02"))
    with open(os.path.join(run, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["hidden"] == [12] and cfg["steps"] == 4 and cfg["lr"] == 0.02
    assert cfg["batch_size"] == 20


def test_demo_trains_on_two_ranks(tmp_path):
    proc = check(run_cli(["demo", "--out", tmp_path / "demo", "--samples", "3000",
                          "--epochs", "2"], cwd=tmp_path))
    assert "test:" in proc.stdout and "accuracy" in proc.stdout
    assert summary(str(tmp_path / "demo" / "run"))["ranks"] == 2
