"""A tiny stand-in for the vision model: a real ONNX graph with the real model's interface
(``image`` (N, 3, 224, 224) → ``logits`` (N, 1000)) whose answer is easy to predict: each class's
logit is a weighted sum of the mean red, green and blue of the input, so a red picture is a
``tabby`` (class 281), a blue one a ``tench`` (class 0) and a green one a ``daisy`` (class 985)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TABBY, TENCH, DAISY = 281, 0, 985


def write_colour_model(path: Path) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    weight = np.zeros((1000, 3), dtype=np.float32)
    weight[TABBY] = (20.0, -10.0, -10.0)
    weight[TENCH] = (-10.0, -10.0, 20.0)
    weight[DAISY] = (-10.0, 20.0, -10.0)
    bias = np.zeros(1000, dtype=np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "w", "b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "colour_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path
