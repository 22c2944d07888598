"""The float16 ONNX strongly typed TensorRT builds fp16 from: fp32 I/O, fp16 inside, unsafe ops kept fp32."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edge_fer.artifacts.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edge_fer.build.float16 import float16_onnx
from edge_fer.data.faces import embedded_faces
from edge_fer.data.preprocessing import Preprocessing, preprocess
from edge_fer.export.onnx_export import export_checkpoint
from edge_fer.model.fernet import FERNet, FERNetConfig

FLOAT, HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> onnx.ModelProto:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("fp16")
    save_checkpoint(Checkpoint(FERNet(FERNetConfig(num_classes=8, img_size=64, width=0.25)), list("abcdefgh"),
                               Preprocessing(64)), folder / "ckpt")
    export_checkpoint(load_checkpoint(folder / "ckpt"), folder / "model.onnx", embedded_faces()[:8])
    return onnx.load(str(folder / "model.onnx"))


def run(model: onnx.ModelProto, batch: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns it cannot constant-fold some fp16 nodes on CPU
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"images": batch})[0]


def test_fp16_inside_fp32_at_the_borders(tiny):
    half = float16_onnx(tiny)
    assert [v.type.tensor_type.elem_type for v in (*half.graph.input, *half.graph.output)] == [FLOAT, FLOAT]
    kinds = Counter(t.data_type for t in half.graph.initializer)
    convs = {n.input[1] for n in half.graph.node if n.op_type == "Conv"}
    assert all(t.data_type == HALF for t in half.graph.initializer if t.name in convs) and kinds[HALF] > 30
    assert {p.key for p in half.metadata_props} == {p.key for p in tiny.metadata_props}  # edge-fer metadata kept


def test_unsafe_ops_and_what_follows_stay_float32(tiny):
    """The cosine head's ReduceL2 can overflow fp16 (65504; it does on this untrained model): the head stays fp32."""
    half = float16_onnx(tiny)
    inferred = onnx.shape_inference.infer_shapes(half)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    norm = next(n for n in half.graph.node if n.op_type == "ReduceL2")
    assert types[norm.output[0]] == FLOAT and types["logits"] == FLOAT
    assert types[next(n for n in half.graph.node if n.op_type == "Relu").output[0]] == HALF


def test_fp16_model_agrees_with_the_float_model(tiny):
    batch = preprocess(embedded_faces()[:32], Preprocessing(64))
    want, got = run(tiny, batch), run(float16_onnx(tiny), batch)
    assert got.dtype == np.float32 and np.abs(got - want).max() < 0.05
    assert (got.argmax(1) == want.argmax(1)).all()


def test_a_quantized_model_is_refused(tiny):
    from onnx import helper

    qdq = onnx.ModelProto()
    qdq.CopyFrom(tiny)
    qdq.graph.node.insert(0, helper.make_node("QuantizeLinear", ["images", "s"], ["q"]))
    with pytest.raises(ValueError, match="QDQ"):
        float16_onnx(qdq)
