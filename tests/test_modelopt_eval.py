"""benchmarks/modelopt_eval.py's graph readers, on edge-fer's own graphs (ModelOpt itself is not installed here)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from benchmarks.modelopt_eval import check_model, mcnemar, precision_map, qdq_placement
from edge_fer.build.float16 import float16_onnx
from edge_fer.data.faces import embedded_faces
from edge_fer.quantize.options import QuantizeOptions
from edge_fer.quantize.run import quantize


def test_placement_of_the_jetson_qdq(tiny_onnx):
    """edge-fer's jetson recipe read back: symmetric int8, per-channel float weights through Q/DQ pairs."""
    out = tiny_onnx.with_name("jetson.onnx")
    quantize(tiny_onnx, out, embedded_faces()[:24], QuantizeOptions(target="jetson"))
    p = qdq_placement(onnx.load(str(out)))
    convs = p["ops"]["Conv"]
    assert p["symmetric"] and p["zero_point_types"] == ["INT8"] and p["edge_fer_tensorrt_rules"] == []
    assert p["weights_per_tensor"] == 0 and p["weights_per_channel"] + p["constant_dq"] == p["weight_dq"]
    assert convs["int8_weight"] >= p["weights_per_channel"] > 0  # >=: CBAM's avg and max branches share one MLP
    assert p["weights_float_through_qdq"] == p["weight_dq"] and p["weights_stored_int8"] == 0  # AddQDQPairToWeight
    assert p["qdq_pairs"] == p["quantize_nodes"] and p["activation_dq"] + p["weight_dq"] == p["dequantize_nodes"]
    assert 0 < convs["int8_in"] <= convs["nodes"]
    assert qdq_placement(onnx.load(str(tiny_onnx)))["qdq_pairs"] == 0


def test_precision_map_and_checker(tiny_onnx, tmp_path):
    half = float16_onnx(onnx.load(str(tiny_onnx)))
    p = precision_map(half)
    assert "ReduceL2" in p["fp32_ops"] and "Conv" in p["fp16_ops"] and "Conv" not in p["fp32_ops"] and p["casts"] >= 2
    assert check_model(tiny_onnx) == "ok"
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
