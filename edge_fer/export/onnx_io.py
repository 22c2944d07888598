"""ONNX files in and out: edge-fer metadata on a graph, checked atomic saves, and the one
loader (with its "already quantized?" test) that quantize, build and bench share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from edge_fer.artifacts.atomic import atomic_path
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo

INPUT_NAME = "images"


OUTPUT_NAME = "logits"


def set_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace edge-fer's metadata_props entries with ``props`` (others are kept)."""
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)


def save_onnx(model: onnx.ModelProto, path: Path | str) -> None:
    """Check and write an ONNX model atomically, weights inside the one file."""
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp))


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX model read once: its file (named in errors), the graph and the edge-fer metadata parsed from it.
    A stage that has read the model passes this on instead of the path, so no later step parses it again."""

    path: Path
    proto: onnx.ModelProto
    info: ModelInfo


def read_onnx(path: Path) -> onnx.ModelProto:
    """The graph of an ONNX file (weights included); an unreadable file is a one-line error naming it."""
    try:
        return onnx.load(str(path))
    except Exception as e:  # DecodeError and friends
        raise _not_valid(path, e) from e


def metadata_of(proto: onnx.ModelProto, path: Path | str) -> ModelInfo:
    """The edge-fer metadata stored in ``proto`` (``path`` is named in errors)."""
    return ModelInfo.from_strings({p.key: p.value for p in proto.metadata_props}, str(path))


def load_onnx(path: Path | str, classes: str | None = None, img_size: int | None = None
              ) -> tuple[onnx.ModelProto, ModelInfo]:
    """The float model and its metadata; a foreign model needs ``classes`` and ``img_size`` by hand."""
    path = Path(path)
    if not path.is_file():
        raise EdgeFerError(f"{path}: file not found")
    proto = read_onnx(path)
    _check_graph(proto, path)
    if classes or img_size:
        if not (classes and img_size):
            raise EdgeFerError(f"{path}: give both --classes and --img-size for a model without edge-fer metadata")
        info = ModelInfo.by_hand(classes, img_size)
    else:
        info = metadata_of(proto, path)
    _check_float(proto, info, path)
    return proto, info


def check_float_model(model: OnnxModel) -> None:
    """What :func:`load_onnx` checks, for a model a stage has already read (its metadata is not parsed again)."""
    _check_graph(model.proto, model.path)
    _check_float(model.proto, model.info, model.path)


def _not_valid(path: Path, e: Exception) -> EdgeFerError:
    return EdgeFerError(f"{path}: not a valid ONNX model ({str(e).splitlines()[0][:200]}); "
                        "give the .onnx written by edge-fer export")


def _check_graph(proto: onnx.ModelProto, path: Path) -> None:
    try:
        onnx.checker.check_model(proto)
    except Exception as e:  # ValidationError, ...
        raise _not_valid(path, e) from e
    if not proto.graph.node or not proto.graph.input:
        raise EdgeFerError(f"{path}: not a valid ONNX model (empty graph); give the .onnx written by edge-fer export")


def _check_float(proto: onnx.ModelProto, info: ModelInfo, path: Path) -> None:
    """The metadata fits the graph, and the model is not quantized yet."""
    info.check_shapes(graph_dims(proto, "input"), graph_dims(proto, "output"), str(path))
    precision = {p.key: p.value for p in proto.metadata_props}.get("edge_fer.precision")
    if precision == "int8" or is_quantized(proto):
        raise EdgeFerError(f"{path}: already quantized; quantize the float model from edge-fer export")


def graph_dims(proto: onnx.ModelProto, kind: str) -> list[int | None]:
    """Dimensions of the graph's first real input or output (None where dynamic)."""
    inits = {t.name for t in proto.graph.initializer}
    values = [v for v in (proto.graph.input if kind == "input" else proto.graph.output) if v.name not in inits]
    if not values:
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in values[0].type.tensor_type.shape.dim]


def is_quantized(proto: onnx.ModelProto) -> bool:
    """The one "already quantized?" test: the graph has QuantizeLinear nodes (a QDQ model)."""
    return any(n.op_type == "QuantizeLinear" for n in proto.graph.node)


def read_info(path: Path | str) -> ModelInfo:
    """An ONNX file's edge-fer metadata, checked against its graph, without opening an inference session
    (external weights are not read either)."""
    proto = onnx.load(str(path), load_external_data=False)
    info = metadata_of(proto, path)
    info.check_shapes(graph_dims(proto, "input"), graph_dims(proto, "output"), str(path))
    return info
