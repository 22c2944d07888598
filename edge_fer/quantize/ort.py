"""ONNX Runtime static quantization (``--target cpu`` and ``jetson``): the recipe, the
nodes cpu keeps float, and the calibration cache that ``--max-drop`` retries reuse."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.quantize import activation_ranges
from edge_fer.quantize.exclude import MIRROR_REASON, depthwise_float_nodes, mirror_nodes
from edge_fer.quantize.options import Recipe
from edge_fer.quantize.tensorrt_qdq import TENSORRT_QUANTIZED_OPS, tensorrt_float_nodes


def calibration_reader(batches: Sequence[np.ndarray], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {input_name: batch}

        def rewind(self) -> None:
            self.it = iter(batches)

    return Reader()


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    """ORT's quantizer logs "please pre-process" advice on the root logger: errors only while it runs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@dataclass(frozen=True)
class OrtRun:
    """What every ``quantize_static`` of one quantization shares: the float model, the calibration batches, the
    recipe and the calibration cache (``ranges``); a ``--max-drop`` retry changes only the nodes kept float."""

    float_path: Path
    batches: Sequence[np.ndarray]
    recipe: Recipe
    ranges: Path  # activation ranges: computed on the first call, read back by every later one
    log: Callable[[str], None] = lambda _msg: None
    where: Path | str | None = None  # the user's model, named in errors (float_path is a temp file by then gone)


def _ort_settings(recipe: Recipe) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    target, method = recipe.target, recipe.method
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    if target == "jetson":
        # AddQDQPairToWeight: float weights + Q + DQ instead of int8 initialisers + DQ, which TensorRT 8.x
        # rejects ("invalid weights type of Int8"); every TensorRT version folds the pair into int8 weights
        act, extra = QuantType.QInt8, {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                       "AddQDQPairToWeight": True,
                                       "OpTypesToExcludeOutputQuantization": list(TENSORRT_QUANTIZED_OPS)}
        ops = {"op_types_to_quantize": list(TENSORRT_QUANTIZED_OPS)}
    else:
        act, extra, ops = QuantType.QUInt8, {"WeightSymmetric": True}, {}
    return {**ops, "quant_format": QuantFormat.QDQ, "activation_type": act, "weight_type": QuantType.QInt8,
            "per_channel": recipe.per_channel, "reduce_range": recipe.reduce_range, "calibrate_method": calib,
            "extra_options": extra}


def prepare_float(proto: onnx.ModelProto, folder: Path) -> Path:
    """Write the float model into ``folder`` after ORT's quantization pre-processing (shape inference).

    Graph optimisation is skipped so node names (``--exclude``) stay those of the exported model.
    """
    raw = folder / "float.onnx"
    onnx.save_model(proto, str(raw))
    prepped = folder / "float.pre.onnx"
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process
        quant_pre_process(str(raw), str(prepped), skip_optimization=True)
        return prepped
    except Exception:  # shape inference is an optimisation only; quantize the raw graph instead
        return raw


INPUT_LAYER_REASON = ("input layer kept float for --target cpu: its uint8 input spans the full 0..255 range, and "
                      "x86 CPUs without VNNI multiply u8 x s8 pairs into saturating int16 (vpmaddubsw); measured "
                      "here (AVX2): quantizing this one conv alone moved logits by up to 1.5")


def input_convs(model: onnx.ModelProto) -> list[str]:
    """Convolutions that read the model input (the stem), directly or through mirror averaging's stacked views."""
    mirror = set(mirror_nodes(model))
    images = {model.graph.input[0].name} | {o for n in model.graph.node if n.name in mirror for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.input[0] in images]


ATTENTION_REASON = ("attention gate kept float for --target cpu: ONNX Runtime has no int8 ReduceMean/ReduceMax, so "
                    "quantizing a CBAM/SE gate only wraps its tiny tensors in Quantize/Dequantize pairs; measured here "
                    "(AVX2, FER+ reference model) ORT INT8 went from 0.74x to 0.70x of ORT fp32's latency with the "
                    "same FER+ test agreement (93.1-93.2%)")


def attention_gates(model: onnx.ModelProto) -> list[str]:
    """Nodes of every sigmoid gate ``x * sigmoid(f(x))`` (CBAM, SE): the gate's branch from ``x`` and the Mul.

    Walks back from each Sigmoid that feeds a Mul until it reaches the Mul's other
    input, the gated feature map; everything passed on the way computes the gate.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    gates: list[str] = []
    for mul in (n for n in model.graph.node if n.op_type == "Mul"):
        for gate_input, x in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
            sigmoid = producer.get(gate_input)
            if sigmoid is None or sigmoid.op_type != "Sigmoid":
                continue
            branch, stack = [], [sigmoid]
            while stack:
                node = stack.pop()
                if node.name in branch:
                    continue
                branch.append(node.name)
                stack += [producer[i] for i in node.input if i != x and i in producer]
            if len(branch) <= 64:  # a gate is a few ops; a walk that ran into the trunk is not one
                gates += [*branch, mul.name]
            break
    return list(dict.fromkeys(gates))


def cpu_float_nodes(model: onnx.ModelProto) -> dict[str, str]:
    """Nodes ``--target cpu`` always keeps float, with the reason for each."""
    out = dict.fromkeys(input_convs(model), INPUT_LAYER_REASON)
    out.update(dict.fromkeys(attention_gates(model), ATTENTION_REASON))
    return out


def recipe_float_nodes(model: onnx.ModelProto, recipe: Recipe) -> dict[str, str]:
    """Nodes the ``recipe`` always keeps float (beside ``--exclude``), with the reason for each."""
    out = cpu_float_nodes(model) if recipe.target == "cpu" else tensorrt_float_nodes(model)
    if recipe.depthwise_float:
        out.update(depthwise_float_nodes(model, recipe.target))
    return {**out, **dict.fromkeys(mirror_nodes(model), MIRROR_REASON)}


def ort_quantize(run: OrtRun, out: Path, exclude: Sequence[str]) -> None:
    """quantize_static of ``run`` into ``out`` (not atomic: callers write into a temp folder), ``exclude`` kept float.

    ``run.ranges`` is the calibration cache: activation ranges are computed on the first call by
    :mod:`edge_fer.quantize.activation_ranges` (every method, minmax included: ORT's own minmax with
    ``CalibMaxIntermediateOutputs``, which edge-fer used before recipe 6, dropped each full chunk of
    batches and kept only the last few batches' ranges) and read back by every later call with the
    same float model, batches and recipe (``--max-drop`` retries).
    Each target keeps its own nodes float (:func:`recipe_float_nodes`): for ``cpu`` the input layer and
    the attention gates, for ``jetson`` CBAM's spatial-attention convs and (``--depthwise float``, its default)
    the depthwise convs; ``jetson`` quantizes convolution inputs only (:data:`TENSORRT_QUANTIZED_OPS`).
    """
    from onnxruntime.quantization import quantize_static

    try:
        recipe = run.recipe
        model = onnx.load(str(run.float_path), load_external_data=False)
        exclude = list(dict.fromkeys([*exclude, *recipe_float_nodes(model, recipe)]))
        if not run.ranges.exists():
            hists = activation_ranges.collect(run.float_path, run.batches, lambda done, total: run.log(
                f"{recipe.method} calibration: batch {done}/{total}"))
            activation_ranges.write_calibration_cache(run.ranges, hists, recipe.method,
                                                      symmetric=recipe.target == "jetson",
                                                      percentile=recipe.percentile)
        with quiet_root_logger():
            quantize_static(str(run.float_path), str(out), None, nodes_to_exclude=list(exclude),
                            calibration_cache_path=str(run.ranges), **_ort_settings(recipe))
    except EdgeFerError:
        raise
    except Exception as e:
        raise EdgeFerError(f"{run.where or run.float_path}: ONNX Runtime quantization failed "
                           f"({str(e).splitlines()[0][:200]})") from e
