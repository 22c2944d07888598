"""``--exclude``: node names or op types to keep float, resolved against a graph's nodes."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from edge_fer.artifacts.errors import EdgeFerError

MIRROR_REASON = ("mirror averaging kept float on every target: mirroring and stacking the two views only move "
                 "pixels, and the mean of two 8-value logit vectors costs nothing in float")


def resolve_exclude(names: Sequence[str], nodes: Sequence[tuple[str, str]],
                    aliases: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Node names for ``--exclude`` entries, each a node name or an op type (``Conv``); unknown -> error.

    ``aliases`` maps an ONNX op type to the op types a converted graph uses for it (OpenVINO turns ONNX Conv
    into Convolution and, for depthwise, GroupConvolution), so a user names ops the way the ONNX model does.
    """
    aliases = aliases or {}
    by_type: dict[str, list[str]] = {}
    for name, op in nodes:
        by_type.setdefault(op, []).append(name)
    known = {n for n, _ in nodes}
    out: list[str] = []
    for entry in names:
        of_type = [n for t in aliases.get(entry, (entry,)) for n in by_type.get(t, [])]
        if entry in known:
            out.append(entry)
        elif of_type:
            out.extend(of_type)
        else:
            raise EdgeFerError(f"--exclude {entry!r}: no node or op type of that name in the model "
                               f"(op types: {', '.join(sorted(by_type))})")
    return list(dict.fromkeys(out))


# ``--depthwise``: why each target's default is what it is, measured on FER+ val with the shipped model
# (benchmarks/results/*-depthwise.md).
DEPTHWISE_REASON = {
    "jetson": "depthwise conv kept float for --target jetson (--depthwise): with them int8, simulated TensorRT "
              "numerics agreed with float on 98.78% of FER+ val, 99.41% with them float",
    "intel": "depthwise conv kept float for --target intel (--depthwise): NNCF quantizes a depthwise conv's input "
             "per channel, and those per-channel quantile ranges shifted the int8 logits by 0.76 on average "
             "(0.08 with them float); FER+ val agreement with float 98.64% int8, 99.37% float",
    "cpu": "depthwise conv kept float (--depthwise float): for --target cpu int8 measured better, FER+ val "
           "agreement with float 99.24% int8, 98.02% float",
}


def depthwise_float_nodes(model: onnx.ModelProto, target: str) -> dict[str, str]:
    """The depthwise convolutions, each with the reason ``target`` keeps it float under ``--depthwise float``."""
    return dict.fromkeys(depthwise_convs(model), DEPTHWISE_REASON[target])


def depthwise_convs(model: onnx.ModelProto) -> list[str]:
    """Convolutions with one input channel per group (``group`` > 1, weights ``[C, 1, k, k]``): FERNet's dw layers."""
    weights = {t.name: t.dims for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "Conv"
            and next((a.i for a in n.attribute if a.name == "group"), 1) > 1
            and len(weights.get(n.input[1], ())) > 1 and weights[n.input[1]][1] == 1]


def mirror_nodes(model: onnx.ModelProto) -> list[str]:
    """The nodes a ``mirror_average`` FERNet adds to its graph (none for other models).

    In front of the stem: the Slice that mirrors the input and the batch Concat of both views;
    behind the head: the Reshape and ReduceMean that average the two views' logits.
    """
    graph = model.graph
    image, logits = graph.input[0].name, graph.output[0].name
    producer = {o: n for n in graph.node for o in n.output}
    front = [n for n in graph.node if n.op_type == "Slice" and n.input[0] == image]
    stack = [n for n in graph.node if n.op_type == "Concat" and image in n.input
             and any(s.output[0] in n.input for s in front)]
    mean = producer.get(logits)
    back = []
    if stack and mean is not None and mean.op_type == "ReduceMean" and mean.input[0] in producer:
        back = [producer[mean.input[0]], mean]
    return [n.name for n in [*front, *stack, *back]] if stack else []
