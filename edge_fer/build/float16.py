"""A float16 copy of a float ONNX model with float32 inputs and outputs, for strongly typed TensorRT.

Strongly typed TensorRT (the only mode of TensorRT 11; the recommended one from 10.12) takes
every tensor type from the network: there is no FP16 builder flag any more, so an fp16
engine needs a graph that computes in fp16.  This conversion keeps the model's interface
(float32 ``images`` in, float32 ``logits`` out, Cast nodes at the borders) so every runner,
the sidecar and DeepStream see the same I/O as the float model.

Ops whose fp16 result is unsafe stay float32, together with everything computed after them:
L2 norms and sums of squares can overflow fp16's 65504, and exp/log/pow lose range.  Measured
here: an untrained 64 px FERNet converted all-fp16 gave NaN logits (its cosine head's
``ReduceL2``); the reference model stayed in range either way (24 embedded faces, max logit
difference to fp32: 0.021 all-fp16, 0.010 with the head kept fp32, same top-1).  Keeping such
ops in fp32 is the rule of ModelOpt's AutoCast and onnxconverter-common's block lists too; the
cosine head is a few hundred MACs, so it costs nothing measurable.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# fp16-unsafe ops: they and every node downstream of them stay float32
KEEP_FLOAT32 = {"ReduceL2", "ReduceSumSquare", "ReduceLogSumExp", "LpNormalization", "Exp", "Log", "Pow", "Sqrt",
                "Softmax", "LogSoftmax"}
# inputs that must stay float32 whatever the node computes in (ONNX type constraints)
FLOAT32_INPUTS = {"Resize": {1, 2}}
FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16)


def _float32_nodes(graph: onnx.GraphProto) -> set[int]:
    """Indices of the nodes that stay float32: the unsafe ops and all nodes reachable from their outputs."""
    keep = {i for i, n in enumerate(graph.node) if n.op_type in KEEP_FLOAT32}
    tainted = {o for i in keep for o in graph.node[i].output}
    for i, node in enumerate(graph.node):  # nodes are topologically sorted (ONNX requires it)
        if i not in keep and any(x in tainted for x in node.input):
            keep.add(i)
            tainted.update(node.output)
    return keep


def _half_initializers(graph: onnx.GraphProto, keep: set[int]) -> set[str]:
    """Float32 initializers that only fp16 nodes read: they are stored as fp16."""
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for x in node.input:
            consumers.setdefault(x, []).append(i)
    return {t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT
            and all(i not in keep for i in consumers.get(t.name, []))}


class _Retyper:
    """The converted node list, with the element type of every tensor so far and one Cast per (tensor, type)."""

    def __init__(self, current: dict[str, int]) -> None:
        self.current = current
        self.nodes: list[onnx.NodeProto] = []
        self.casts: dict[tuple[str, int], str] = {}

    def as_type(self, name: str, want: int) -> str:
        """``name`` as a ``want`` tensor: itself, or the output of a Cast added before its first reader."""
        if self.current.get(name) not in FLOATS or self.current[name] == want:
            return name
        key = (name, want)
        if key not in self.casts:
            self.casts[key] = f"{name}_as_{'fp16' if want == TensorProto.FLOAT16 else 'fp32'}"
            self.nodes.append(helper.make_node("Cast", [name], [self.casts[key]], name=f"cast_{self.casts[key]}",
                                               to=want))
            self.current[self.casts[key]] = want
        return self.casts[key]

    def add(self, source: onnx.NodeProto, want: int, types: dict[str, int]) -> None:
        """A copy of ``source`` computing in ``want``: inputs cast, float constants and Casts retyped."""
        node = onnx.NodeProto()
        node.CopyFrom(source)
        fixed = FLOAT32_INPUTS.get(node.op_type, set())
        if node.op_type not in ("Shape", "Size"):  # type-agnostic: they read shapes, not values
            node.input[:] = [self.as_type(x, TensorProto.FLOAT if k in fixed else want) if x else x
                             for k, x in enumerate(node.input)]
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == TensorProto.FLOAT \
                    and want == TensorProto.FLOAT16:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16)))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = want
        for out in node.output:
            kind = types.get(out, TensorProto.FLOAT if node.op_type == "Constant" else None)
            self.current[out] = want if kind in FLOATS else kind
        self.nodes.append(node)

    def cast_outputs(self, outputs) -> None:
        """Outputs keep their float32 type: an fp16 one is cast back under a new internal name."""
        for output in outputs:
            if self.current.get(output.name) == TensorProto.FLOAT16:
                inner = f"{output.name}_fp16"
                for node in self.nodes:
                    node.output[:] = [inner if x == output.name else x for x in node.output]
                    node.input[:] = [inner if x == output.name else x for x in node.input]
                self.nodes.append(helper.make_node("Cast", [inner], [output.name], name=f"cast_{output.name}_fp32",
                                                   to=TensorProto.FLOAT))


def float16_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` computing in fp16 where safe, float32 I/O; raises ValueError if it is not a float model."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)}
    types.update({t.name: t.data_type for t in graph.initializer})
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node):
        raise ValueError("a quantized (QDQ) model: convert the float ONNX to fp16, not the INT8 one")
    keep = _float32_nodes(graph)
    half_init = _half_initializers(graph, keep)
    current = {t.name: (TensorProto.FLOAT16 if t.name in half_init else t.data_type) for t in graph.initializer}
    current.update({v.name: v.type.tensor_type.elem_type for v in graph.input})
    retyper = _Retyper(current)
    for i, source in enumerate(graph.node):
        retyper.add(source, TensorProto.FLOAT if i in keep else TensorProto.FLOAT16, types)
    retyper.cast_outputs(graph.output)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(retyper.nodes)
    del out.graph.value_info[:]  # stale float32 annotations; types follow from the graph
    for t in out.graph.initializer:
        if t.name in half_init:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    onnx.checker.check_model(out)
    return out
