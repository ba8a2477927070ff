"""`hpctrain export`: onnxruntime's outputs equal `hpctrain predict`'s on fresh raw rows for
every activation and head, the columns named after the dataset's; the safetensors file loads
with the safetensors package and holds the checkpoint's parameters; the Triton config in
docs/SERVING.md names the inputs and outputs the exporter writes; bad input is exit 2."""

import json
import os
import re

import numpy as np
import pytest
from helpers import REPO, check, child_env, fails, run_cli
from test_predict import FEATURES, feature_table, named, rows, write_csv  # noqa: F401

from hpctrain import checkpoint as ckpt
from hpctrain.model import MLP

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

TIMEOUT = 120
SCALES = np.array([1.0, 1e3, 1e-2, 50.0, 7.0, 1e5], dtype=np.float32)  # raw columns' scales


def write_checkpoint(path, activation, task, features=6, names=None, seed=0):
    """A real checkpoint file of a random model taking raw rows (recorded standardization)."""
    classes = {"binary": 2, "multiclass": 4, "regression": 0}[task]
    model = MLP(features, (9, 5), activation, task, classes)
    params = model.init_params(seed)
    scales = np.resize(SCALES, features)
    extra = {"standardization": {"mean": (scales * 3).tolist(), "std": scales.tolist()}}
    if names:
        extra["feature_names"] = names
    ckpt.write(str(path), model, params, {"name": "sgd", "step": 0, "buffers": {}},
               config={"extra": extra})
    return str(path)


def fresh_rows(n, features=6, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.normal(3, 2, (n, features)) * SCALES[:features]).astype(np.float32)


def onnx_outputs(model_path, feeds):
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def predicted(checkpoint, X, tmp_path):
    """`hpctrain predict`'s own answer for raw rows X (its code, as the command runs it)."""
    from hpctrain.predict import predict_file

    np.save(tmp_path / "fresh.npy", X)
    predict_file(checkpoint, str(tmp_path / "fresh.npy"), str(tmp_path / "p.npy"), force=True)
    return np.load(tmp_path / "p.npy")


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
def test_onnxruntime_equals_predict_for_every_activation_and_head(tmp_path, activation, task):
    from hpctrain.export_model import load_exported
    from hpctrain.export_onnx import write_onnx

    checkpoint = write_checkpoint(tmp_path / "c.h5", activation, task)
    write_onnx(load_exported(checkpoint), str(tmp_path / "m.onnx"))
    X = fresh_rows(257)
    got = onnx_outputs(str(tmp_path / "m.onnx"), {"features": X})
    want = predicted(checkpoint, X, tmp_path)
    assert got.shape == (257, 4 if task == "multiclass" else 1)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)


def test_the_command_exports_named_inputs_that_take_columns_by_name(named, tmp_path):  # noqa: F811
    _, checkpoint = named  # trained on an imported, standardized CSV with named columns
    out = str(tmp_path / "model.onnx")
    proc = check(run_cli(["export", checkpoint, "--format", "onnx", "--out", out],
                         timeout=TIMEOUT))
    assert "output probability" in proc.stdout
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == FEATURES
    X, _ = rows(64, seed=9)
    # fed in reverse order, by name: the graph puts them in training order
    feeds = {name: X[:, [FEATURES.index(name)]].astype(np.float32) for name in FEATURES[::-1]}
    got = session.run(["probability"], feeds)[0][:, 0]
    fresh = write_csv(tmp_path / "fresh.csv", FEATURES[::-1], feature_table(X, FEATURES[::-1]))
    check(run_cli(["predict", "--checkpoint", checkpoint, "--input", fresh, "--out",
                   str(tmp_path / "p.npy")], timeout=TIMEOUT))
    np.testing.assert_allclose(got, np.load(tmp_path / "p.npy"), rtol=1e-5, atol=1e-5)
    single = str(tmp_path / "single.onnx")
    check(run_cli(["export", checkpoint, "--format", "onnx", "--out", single,
                   "--single-input"], timeout=TIMEOUT))
    both = onnx_outputs(single, {"features": X.astype(np.float32)})[:, 0]
    np.testing.assert_allclose(both, got, rtol=1e-6, atol=1e-7)


def test_safetensors_holds_the_checkpoints_parameters(tmp_path):
    from safetensors import safe_open

    names = [f"col{i}" for i in range(6)]
    checkpoint = write_checkpoint(tmp_path / "c.h5", "tanh", "multiclass", names=names)
    out = str(tmp_path / "model.safetensors")
    check(run_cli(["export", checkpoint, "--format", "safetensors", "--out", out],
                  timeout=TIMEOUT))
    tensors = safetensors_numpy.load_file(out)
    state = ckpt.load(checkpoint)
    model = MLP.from_spec(state.model_spec)
    layers = model.views(state.params)
    assert len(tensors) == 2 * len(layers) + 2
    for l, (W, b) in enumerate(layers):
        np.testing.assert_array_equal(tensors[f"layer{l}.weight"], W)
        np.testing.assert_array_equal(tensors[f"layer{l}.bias"], b)
    np.testing.assert_array_equal(tensors["standardization.std"], SCALES)
    with safe_open(out, framework="numpy") as f:
        meta = f.metadata()
    assert json.loads(meta["model"]) == model.spec()
    assert json.loads(meta["feature_names"]) == names
    with open(out, "rb") as f:  # a JSON header and raw bytes: nothing a pickle could run
        assert b"\x80\x04" not in f.read(64) and b"pickle" not in f.read()


def triton_config(text):
    """name, data_type and dims of each input and output of a config.pbtxt (simply parsed)."""
    found = {}
    for kind in ("input", "output"):
        block = re.search(rf"^{kind} \[(.*?)^\]", text, re.S | re.M).group(1)
        found[kind] = [(m[0], m[1], [int(d) for d in m[2].split(",")]) for m in re.findall(
            r'name: "([^"]+)"\s+data_type: (\w+)\s+dims: \[ ?([-\d, ]+?) ?\]', block)]
    return found


def test_the_triton_config_in_the_docs_matches_the_exported_model(tmp_path):
    with open(os.path.join(REPO, "docs", "SERVING.md")) as f:
        doc = f.read()
    config = re.search(r"```text\n(name: .*?)```", doc, re.S).group(1)
    assert 'backend: "onnxruntime"' in config and "dynamic_batching" in config
    assert re.search(r"max_batch_size: [1-9]", config)
    # the docs' model: the quick start's 32 features, binary task, no column names
    checkpoint = write_checkpoint(tmp_path / "c.h5", "relu", "binary", features=32)
    out = str(tmp_path / "model.onnx")
    check(run_cli(["export", checkpoint, "--format", "onnx", "--out", out], timeout=TIMEOUT))
    graph = onnx.load(out).graph

    def described(values):  # Triton's dims leave out the batch dimension
        return [(v.name, "TYPE_FP32", [d.dim_value for d in v.type.tensor_type.shape.dim[1:]])
                for v in values]

    parsed = triton_config(config)
    assert parsed["input"] == described(graph.input)
    assert parsed["output"] == described(graph.output)


def test_bad_input_is_one_line_and_no_file(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "c.h5", "relu", "binary")
    out = str(tmp_path / "m.onnx")
    fails(["export", checkpoint, "--format", "onnx", "--out", str(tmp_path / "m.pb")],
          "output must be .onnx")
    fails(["export", str(tmp_path / "none.h5"), "--format", "onnx", "--out", out],
          "checkpoint not found")
    state = ckpt.load(checkpoint)
    model = MLP.from_spec(state.model_spec)
    broken = {"extra": {"standardization": {"mean": [0.0] * 6, "std": [0.0] * 6}}}
    ckpt.write(checkpoint, model, state.params, {"name": "sgd", "step": 0, "buffers": {}},
               config=broken)
    fails(["export", checkpoint, "--format", "safetensors", "--out",
           str(tmp_path / "m.safetensors")], "standardization is not 6 finite means")
    assert sorted(os.listdir(tmp_path)) == ["c.h5"]


def test_a_missing_package_names_the_extra(tmp_path):
    fake = tmp_path / "hidden" / "onnx"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed')\n")
    checkpoint = write_checkpoint(tmp_path / "c.h5", "relu", "binary")
    env = child_env(PYTHONPATH=str(tmp_path / "hidden"))
    proc = run_cli(["export", checkpoint, "--format", "onnx", "--out",
                    str(tmp_path / "m.onnx")], timeout=TIMEOUT, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("hpctrain: error: the onnx package is missing: "
                                   "pip install 'hpctrain[export]'")
    assert not os.path.exists(tmp_path / "m.onnx")
