"""`hpctrain export --format onnx`: the MLP as an ONNX graph that takes RAW rows.

The graph, built with the onnx package's helper API (no torch):

  inputs ─► Concat ─► Sub(mean) ─► Div(std) ─► [MatMul ─► Add ─► activation] x hidden
         ─► MatMul ─► Add ─► head (Sigmoid | Softmax | Identity) ─► output

- Inputs: one [batch, 1] float32 input per feature, named after the dataset's columns when
  the checkpoint recorded them (a client sends columns by name, in any order), concatenated
  in training order; otherwise (or with `--single-input`) one [batch, features] input
  `features`, columns in training order.
- The standardization is two nodes on the input, the same float32 operations `predict`
  applies, rather than multiplied into the first layer's weights, which would round
  differently (and lose digits for features on a large scale, as incomes are).
- Outputs, always [batch, k]: binary `probability` (P(class 1), k = 1), multiclass
  `probabilities` (k = classes), regression `prediction` (k = 1).
Opset 17, IR version 8: what onnxruntime has read since 1.14 (and Triton's backend with it).
"""

import json

import numpy as np

from .atomic import replacing
from .errors import InputError
from .export_model import Exported, require

OPSET = 17
IR_VERSION = 8
SINGLE_INPUT = "features"
BATCH = "batch"
ACTIVATION_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "identity": None}
HEADS = {"binary": ("probability", "Sigmoid"), "multiclass": ("probabilities", "Softmax"),
         "regression": ("prediction", None)}


def output_name(task: str) -> str:
    return HEADS[task][0]


def input_names(exported: Exported, single_input: bool) -> list:
    if single_input or exported.feature_names is None:
        return [SINGLE_INPUT]
    return list(exported.feature_names)


def build_graph(exported: Exported, single_input=False):
    """The onnx.ModelProto of `exported` (checked by onnx.checker)."""
    onnx = require("onnx")
    helper, TensorProto = onnx.helper, onnx.TensorProto
    model = exported.model
    if model.activation not in ACTIVATION_OPS:
        raise InputError(f"activation {model.activation!r} has no ONNX export", exported.path)
    if model.task not in HEADS:
        raise InputError(f"task {model.task!r} has no ONNX export", exported.path)
    nodes, weights = [], []

    def constant(name, array):
        weights.append(onnx.numpy_helper.from_array(np.ascontiguousarray(array, np.float32),
                                                    name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=f"{op}_{name}", **attrs))
        return name

    names = input_names(exported, single_input)
    width = 1 if len(names) > 1 else model.features
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [BATCH, width])
              for n in names]
    x = names[0] if len(names) == 1 else node("Concat", names, "x", axis=1)
    if exported.mean is not None:
        x = node("Sub", [x, constant("mean", exported.mean)], "centered")
        x = node("Div", [x, constant("std", exported.std)], "standardized")
    last = len(exported.layers) - 1
    for l, (W, b) in enumerate(exported.layers):
        x = node("MatMul", [x, constant(f"layer{l}.W", W)], f"layer{l}.matmul")
        x = node("Add", [x, constant(f"layer{l}.b", b)], f"layer{l}.z")
        op = ACTIVATION_OPS[model.activation]
        if l < last and op is not None:
            x = node(op, [x], f"layer{l}.a")
    out, head = HEADS[model.task]
    node(head or "Identity", [x], out, **({"axis": 1} if head == "Softmax" else {}))
    outputs = [helper.make_tensor_value_info(out, TensorProto.FLOAT, [BATCH, model.outputs])]
    graph = helper.make_graph(nodes, "hpctrain_mlp", inputs, outputs, initializer=weights)
    proto = helper.make_model(graph, producer_name="hpctrain", ir_version=IR_VERSION,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    helper.set_model_props(proto, _metadata(exported))
    onnx.checker.check_model(proto)
    return proto


def _metadata(exported: Exported) -> dict:
    return {"hpctrain_model": json.dumps(exported.model.spec()),
            "hpctrain_step": str(exported.step),
            "label_names": json.dumps(exported.class_names),
            "feature_names": json.dumps(exported.feature_names)}


def write_onnx(exported: Exported, out, single_input=False) -> None:
    proto = build_graph(exported, single_input)
    with replacing(out) as tmp:
        with open(tmp, "wb") as f:
            f.write(proto.SerializeToString())
