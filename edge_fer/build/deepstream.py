"""DeepStream: the model as an nvinfer secondary classifier on face detections (``--deepstream``).

nvinfer feeds a network ``y = net-scale-factor * (x - offsets[c])`` of the 0..255 crop,
resized to the input size.  edge-fer's preprocessing is ``(gray/255 - mean) / std``,
grey replicated to 3 channels, so ``net-scale-factor = 1/(255*std)`` and
``offsets = 255*mean``.  Two things nvinfer cannot do with the exported model as is:

* grey input: nvinfer converts crops to grey itself with ``model-color-format=2`` but
  then requires a 1-channel network input (it fails "GRAY input format specified but
  network input channels is not 1").  Feeding RGB instead (format 0) would give the
  model three different channels it never saw in training.  So the DeepStream variant
  takes ``images`` as N x 1 x H x W and replicates it (Concat) into the original graph:
  the same function as preprocess() + model, with nvinfer's grey conversion.
* probabilities: nvinfer's default classifier parser keeps the largest output value
  above ``classifier-threshold``, starting from 0, i.e. it expects softmax
  probabilities; the model returns logits.  The variant appends a Softmax (``probs``).

nvinfer's grey is the luma of its input surface (the Y plane of NV12 video), whose
weights and range can differ slightly from OpenCV's BGR->GRAY (0.299/0.587/0.114, full
range); that, and resizing on the GPU (``scaling-filter=1``, bilinear, vs cv2
INTER_LINEAR), are the only differences left from :func:`edge_fer.data.preprocessing.preprocess`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.build.tensorrt import Flavor

PROBS = "probs"
NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # nvinfer's network-mode values


def deepstream_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with a 1-channel grey input (replicated to 3 channels inside) and a softmax ``probs`` output."""
    ds = onnx.ModelProto()
    ds.CopyFrom(model)
    graph = ds.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise EdgeFerError("DeepStream variant: expected a model with one input and one output")
    source = graph.input[0]
    dims = source.type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != 3:
        raise EdgeFerError(f"DeepStream variant: expected an N x 3 x H x W input, got {len(dims)} dims")
    name = source.name
    replicated = f"{name}_gray3"
    for node in graph.node:
        node.input[:] = [replicated if i == name else i for i in node.input]
    dims[1].dim_value = 1  # the graph input keeps its name ("images"), now N x 1 x H x W
    logits = graph.output[0].name
    graph.node.insert(0, helper.make_node("Concat", [name, name, name], [replicated], name="gray_to_3ch", axis=1))
    graph.node.append(helper.make_node("Softmax", [logits], [PROBS], name="softmax_probs", axis=1))
    out = onnx.ValueInfoProto()
    out.CopyFrom(graph.output[0])
    out.name = PROBS
    del graph.output[:]
    graph.output.append(out)
    ds.metadata_props.add(key="edge_fer.variant", value="deepstream")
    onnx.checker.check_model(ds)
    return ds


def _precision_lines(precision: str, flavor: Flavor, calib_file: str) -> list[str]:
    if flavor.strongly_typed:
        return [f"# TensorRT {flavor.label} builds strongly typed: {precision} comes from the ONNX itself; nvinfer's",
                "# FP16/INT8 modes set builder flags such a network refuses, so no flag (0=FP32 mode) is asked for",
                "network-mode=0"]
    lines = ["# 0=FP32, 1=INT8, 2=FP16", f"network-mode={NETWORK_MODE[precision]}"]
    if needs_calib_file(precision, flavor):
        lines += ["# INT8 scales are in the Q/DQ ONNX; without this file nvinfer would rebuild in FP16 mode (which a",
                  "# Q/DQ network cannot); TensorRT ignores its values for a Q/DQ network",
                  f"int8-calib-file={calib_file}"]
    return lines


def deepstream_names(stem: str) -> dict[str, str]:
    """File names of the DeepStream pieces that sit next to engine ``STEM.engine``."""
    return {"onnx": f"{stem}.deepstream.onnx", "engine": f"{stem}.deepstream.engine",
            "config": f"{stem}.nvinfer.txt", "labels": f"{stem}.labels.txt", "calib": f"{stem}.deepstream.calib"}


def needs_calib_file(precision: str, flavor: Flavor) -> bool:
    """nvinfer's INT8 mode on a weakly typed TensorRT: without int8-calib-file it silently builds FP16."""
    return precision == "int8" and not flavor.strongly_typed


def calibration_file(model: onnx.ModelProto, flavor: Flavor) -> str:
    """A TensorRT calibration cache (``TRT-<version>-EntropyCalibration2``, ``tensor: big-endian float32 hex``)
    holding each QuantizeLinear input's scale, for nvinfer's ``int8-calib-file``."""
    init = {t.name: t for t in model.graph.initializer}
    major, minor = flavor.version
    number = major * 1000 + minor * 100 if major < 10 else major * 10000 + minor * 100  # NV_TENSORRT_VERSION
    lines = [f"TRT-{number}-EntropyCalibration2"]
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in init:
            scale = float(np.asarray(numpy_helper.to_array(init[node.input[1]])).reshape(-1)[0])
            lines.append(f"{node.input[0]}: {struct.pack('>f', scale).hex()}")
    if len(lines) == 1:
        raise EdgeFerError("DeepStream INT8: the model has no QuantizeLinear with a constant scale")
    return "\n".join(lines) + "\n"


def labels_text(classes: list[str]) -> str:
    """nvinfer classifier labels: one line per output layer, that layer's classes separated by ';'."""
    bad = [c for c in classes if ";" in c or "\n" in c]
    if bad:
        raise EdgeFerError(f"class names {bad} contain ';' or a newline, which nvinfer's labels file cannot hold")
    return ";".join(classes) + "\n"


@dataclass(frozen=True)
class NvinferSettings:
    """What a Gst-nvinfer config says besides the model's preprocessing: the engine it runs (the files named
    after ``stem`` by :func:`deepstream_names`, precision, batch, TensorRT release, DLA core) and where it sits
    in the pipeline (a secondary classifier on the objects of the primary detector ``operate_on_gie_id``)."""

    stem: str
    precision: str
    batch_size: int
    flavor: Flavor
    dla_core: int | None = None
    gie_id: int = 2
    operate_on_gie_id: int = 1
    threshold: float = 0.0


def nvinfer_config(info: ModelInfo, settings: NvinferSettings) -> str:
    """The ``[property]`` file for Gst-nvinfer (paths relative to the config file, as nvinfer resolves them)."""
    names = deepstream_names(settings.stem)
    onnx_file = names["onnx"]
    scale, offset = info.preprocessing.scale_offset
    size = info.img_size
    lines = [
        "# Gst-nvinfer config written by edge-fer build --deepstream: expression classifier on face detections.",
        f"# nvinfer input = net-scale-factor * (pixel - offsets) = (pixel/255 - {info.preprocessing.mean:g}) / "
        f"{info.preprocessing.std:g}, edge-fer's preprocessing.",
        "# The model expects GREY: model-color-format=2 makes nvinfer convert each face crop to grey (luma) and",
        f"# {onnx_file} takes that 1-channel input and replicates it to the 3 channels the network was trained on.",
        f"# Its output '{PROBS}' is softmax probabilities, which nvinfer's default classifier parser expects.",
        "[property]",
        "gpu-id=0",
        f"net-scale-factor={scale:.10g}",
        f"offsets={offset:.10g}",
        "model-color-format=2",
        f"infer-dims=1;{size};{size}",
        "scaling-filter=1",
        "maintain-aspect-ratio=0",
        f"onnx-file={onnx_file}",
        f"model-engine-file={names['engine']}",
        f"labelfile-path={names['labels']}",
        f"batch-size={settings.batch_size}",
        *_precision_lines(settings.precision, settings.flavor, names["calib"]),
        "# 1=classifier; process-mode 2 = secondary: runs on the objects of operate-on-gie-id",
        "network-type=1",
        "process-mode=2",
        f"gie-unique-id={settings.gie_id}",
        f"operate-on-gie-id={settings.operate_on_gie_id}",
        "# add operate-on-class-ids=<face class id> if the primary detector finds more than faces",
        f"output-blob-names={PROBS}",
        f"classifier-threshold={settings.threshold:g}",
        "classifier-async-mode=0",
    ]
    if settings.dla_core is not None:
        lines += ["enable-dla=1", f"use-dla-core={settings.dla_core}"]
    return "\n".join(lines) + "\n"
