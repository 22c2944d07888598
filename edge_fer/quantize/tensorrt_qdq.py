"""TensorRT's explicit-quantization rules, checked on a QDQ graph before it is written."""

from __future__ import annotations

import numpy as np
import onnx


def _scale(init: dict[str, onnx.TensorProto], name: str) -> np.ndarray | None:
    """The scale initializer ``name`` as an array; None where the scale is not a constant."""
    from onnx import numpy_helper
    return numpy_helper.to_array(init[name]) if name in init else None


def check_tensorrt_qdq(model: onnx.ModelProto) -> list[str]:
    """Violations of TensorRT's explicit-quantization rules in a QDQ graph (empty list: fine).

    Rules: every Q/DQ has an explicit int8 zero point equal to 0 (symmetric int8);
    every quantized Conv weight is int8 (or float through its own Q/DQ pair, which TensorRT
    folds) with one scale per output channel along axis 0.
    """
    from onnx import TensorProto, numpy_helper

    init = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    problems: list[str] = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(node.input) < 3 or not node.input[2]:
            if node.op_type == "QuantizeLinear":
                problems.append(f"{node.name}: QuantizeLinear without zero point (defaults to uint8)")
            elif node.input[0] in init and init[node.input[0]].data_type != TensorProto.INT8:
                problems.append(f"{node.name}: dequantizes a {TensorProto.DataType.Name(init[node.input[0]].data_type)}"
                                " tensor, not int8")
            continue
        zp_name = node.input[2]
        if zp_name not in init:
            problems.append(f"{node.name}: zero point {zp_name} is not a constant")
            continue
        zp = init[zp_name]
        if zp.data_type != TensorProto.INT8:
            problems.append(f"{node.name}: zero point type {TensorProto.DataType.Name(zp.data_type)}, not INT8")
        if np.any(numpy_helper.to_array(zp) != 0):
            problems.append(f"{node.name}: non-zero zero point (asymmetric quantization)")
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        dq = producer.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue  # weight left float (excluded layer): allowed
        q = producer.get(dq.input[0])  # AddQDQPairToWeight: float weight -> Q -> DQ (TensorRT folds the pair)
        weight = init.get(q.input[0] if q is not None and q.op_type == "QuantizeLinear" else dq.input[0])
        scale = _scale(init, dq.input[1])
        if weight is None or scale is None:
            problems.append(f"{node.name}: quantized weight or its scale is not a constant")
            continue
        if weight.data_type not in (TensorProto.INT8, TensorProto.FLOAT) or (
                weight.data_type == TensorProto.FLOAT and q is None):
            problems.append(f"{node.name}: weight type {TensorProto.DataType.Name(weight.data_type)}, not INT8")
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        out_ch = weight.dims[0]
        if scale.size != out_ch:
            problems.append(f"{node.name}: weight has {scale.size} scale(s), TensorRT wants per-channel ({out_ch})")
        elif out_ch > 1 and axis != 0:
            problems.append(f"{node.name}: weight scales along axis {axis}, TensorRT wants axis 0 (output channel)")
    return problems
