"""benchmarks/modelopt_eval.py's graph readers, on edge-fer's own graphs (ModelOpt itself is not installed here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from benchmarks.modelopt_eval import check_model, mcnemar, precision_map, qdq_placement
from edge_fer.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edge_fer.data.faces import embedded_faces
from edge_fer.data.preprocessing import Preprocessing
from edge_fer.export import export_checkpoint
from edge_fer.float16 import float16_onnx
from edge_fer.model import FERNet, FERNetConfig
from edge_fer.quantize import quantize


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("mo")
    save_checkpoint(Checkpoint(FERNet(FERNetConfig(num_classes=8, img_size=64, width=0.25)), list("abcdefgh"),
                               Preprocessing(64)), folder / "ckpt")
    export_checkpoint(load_checkpoint(folder / "ckpt"), folder / "model.onnx", embedded_faces()[:8])
    return folder / "model.onnx"


def test_placement_of_the_jetson_qdq(tiny):
    """edge-fer's jetson recipe read back: symmetric int8, per-channel float weights through Q/DQ pairs."""
    out = tiny.with_name("jetson.onnx")
    quantize(tiny, out, embedded_faces()[:24], target="jetson")
    p = qdq_placement(onnx.load(str(out)))
    convs = p["ops"]["Conv"]
    assert p["symmetric"] and p["zero_point_types"] == ["INT8"] and p["edge_fer_tensorrt_rules"] == []
    assert p["weights_per_tensor"] == 0 and p["weights_per_channel"] + p["constant_dq"] == p["weight_dq"]
    assert convs["int8_weight"] >= p["weights_per_channel"] > 0  # >=: CBAM's avg and max branches share one MLP
    assert p["weights_float_through_qdq"] == p["weight_dq"] and p["weights_stored_int8"] == 0  # AddQDQPairToWeight
    assert p["qdq_pairs"] == p["quantize_nodes"] and p["activation_dq"] + p["weight_dq"] == p["dequantize_nodes"]
    assert 0 < convs["int8_in"] <= convs["nodes"]
    assert qdq_placement(onnx.load(str(tiny)))["qdq_pairs"] == 0


def test_precision_map_and_checker(tiny, tmp_path):
    half = float16_onnx(onnx.load(str(tiny)))
    p = precision_map(half)
    assert "ReduceL2" in p["fp32_ops"] and "Conv" in p["fp16_ops"] and "Conv" not in p["fp32_ops"] and p["casts"] >= 2
    assert check_model(tiny) == "ok"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    assert check_model(broken) != "ok"


def test_mcnemar_counts_the_images_only_one_side_gets():
    ours = np.array([True] * 8 + [False] * 2 + [True] * 90)
    base = np.array([False] * 8 + [True] * 2 + [True] * 90)
    got = mcnemar(ours, base)
    assert (got["only_this_agrees"], got["only_default_agrees"]) == (8, 2)
    assert got["p"] == pytest.approx(2 * (1 + 10 + 45) / 2 ** 10)  # exact binomial, two-sided
    assert mcnemar(base, base)["p"] == 1.0
