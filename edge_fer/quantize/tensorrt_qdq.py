"""TensorRT's explicit quantization: where the jetson recipe puts Q/DQ, and the rules a QDQ graph is
checked against before it is written."""

from __future__ import annotations

import numpy as np
import onnx

# Q/DQ go on the inputs of convolutions only (activation and weight; not on their outputs), NVIDIA's
# placement advice for explicit quantization: TensorRT fuses each pair into the convolution that
# reads it and runs the ReLUs, adds, gates and the head in the precision around them.  Measured on
# FER+ val with the shipped model, simulated int8 (benchmarks/results/*-jetson_placement.md): 98.78%
# top-1 agreement with float (percentile 99.999; entropy 98.64%), 99.41% with the depthwise convs float too
# (the default since recipe 10), against 98.47-98.61% with Q/DQ on every op ORT quantizes (Add, Mul, Sigmoid,
# pooling, MatMul, conv outputs: recipe 6).  On the model before it, NVIDIA ModelOpt's int8 graph (entropy)
# agreed on 97.54% of FER+ test (benchmarks/results/*-modelopt_eval.md).
TENSORRT_QUANTIZED_OPS = ("Conv",)

SPATIAL_ATTENTION_REASON = ("CBAM spatial-attention conv kept float for --target jetson: it reads the 2-channel "
                            "concatenation of a channel mean and max, whose one int8 scale serves two different "
                            "ranges, and a 2->1-channel conv gains nothing from int8; NVIDIA ModelOpt leaves it "
                            "float too. Measured on FER+ val (simulated int8, percentile, Q/DQ on conv inputs and "
                            "outputs): no difference beyond noise (+0.07 and -0.07 pt on two models)")


def _concat_axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def spatial_attention_convs(model: onnx.ModelProto) -> list[str]:
    """Convolutions that read a channel Concat: CBAM's spatial attention (``conv([mean_c(x), max_c(x)])``).

    The stem of a mirror-averaging model reads a batch Concat (axis 0) of the two views; it is no gate.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type == "Conv" and n.input[0] in producer and producer[n.input[0]].op_type == "Concat"
            and _concat_axis(producer[n.input[0]]) == 1]


def tensorrt_float_nodes(model: onnx.ModelProto) -> dict[str, str]:
    """Convolutions ``--target jetson`` always keeps float, with the reason for each (the depthwise convs, its
    ``--depthwise`` default, come from :func:`edge_fer.quantize.ort.recipe_float_nodes`)."""
    return dict.fromkeys(spatial_attention_convs(model), SPATIAL_ATTENTION_REASON)


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
