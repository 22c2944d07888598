"""``--exclude``: node names or op types to keep float, resolved against a graph's nodes."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from edge_fer.artifacts.errors import EdgeFerError

MIRROR_REASON = ("mirror averaging kept float on every target: mirroring and stacking the two views only move "
                 "pixels, and the mean of two 8-value logit vectors costs nothing in float")


def resolve_exclude(names: Sequence[str], nodes: Sequence[tuple[str, str]], aliases: dict[str, str] | None = None
                    ) -> list[str]:
    """Node names for ``--exclude`` entries, each a node name or an op type (``Conv``); unknown -> error."""
    aliases = aliases or {}
    by_type: dict[str, list[str]] = {}
    for name, op in nodes:
        by_type.setdefault(op, []).append(name)
    known = {n for n, _ in nodes}
    out: list[str] = []
    for entry in names:
        if entry in known:
            out.append(entry)
        elif aliases.get(entry, entry) in by_type:
            out.extend(by_type[aliases.get(entry, entry)])
        else:
            raise EdgeFerError(f"--exclude {entry!r}: no node or op type of that name in the model "
                               f"(op types: {', '.join(sorted(by_type))})")
    return list(dict.fromkeys(out))


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
