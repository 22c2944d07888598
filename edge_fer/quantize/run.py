"""Post-training INT8 quantization of an exported ONNX model (``edge-fer quantize``).

Three targets, one calibration set, one report:

``cpu``
    ONNX Runtime ``quantize_static``, QDQ format, per-channel weights.  U8S8
    (uint8 activations, int8 weights) was measured faster than S8S8 on this
    project's x86 box (AMD EPYC, AVX-512 VNNI, ORT 1.32, 1 thread, FERNet 224px
    width 1.0, median of 40): batch 1 fp32 3.96 ms, S8S8 3.92 ms, U8S8 2.56 ms;
    batch 8 fp32 33.9 ms, S8S8 28.5 ms, U8S8 18.5 ms (``benchmarks/quantize.md``).
    So activations are uint8 (asymmetric), weights int8 symmetric.  On CPUs
    without VNNI the weights use 7 bits (``reduce_range``, :func:`weight_range`):
    measured on FER+ test (AVX2 EPYC), top-1 agreement with float 91.5% -> 93.2%
    and ORT INT8 latency 8.6 -> 7.0 ms (one interleaved run).  The input conv and the CBAM/SE attention
    gates stay float (:func:`cpu_float_nodes`): ORT has no int8 reductions, so a
    quantized gate only adds Quantize/Dequantize work.
``jetson``
    QDQ ONNX for TensorRT explicit quantization: int8 activations and weights,
    both symmetric (all zero points 0), weights per output channel (axis 0),
    biases left float (TensorRT fuses them itself).  :func:`check_tensorrt_qdq`
    verifies those rules on the written graph.  Its held-out check (and ``--max-drop``)
    runs the Q/DQ pairs as float ops: TensorRT's int8 numerics, not ORT's x86 kernels,
    which saturate on full-range weights without VNNI (52.5% vs 88.3% agreement measured).
``intel``
    NNCF ``nncf.quantize`` on the OpenVINO model (preset PERFORMANCE: symmetric),
    saved as IR ``OUT.xml`` + ``OUT.bin`` with weights kept int8/f32 (no fp16 compression).
    Without VNNI, NNCF's overflow fix covers every layer (agreement 93.6% ->
    94.6% on FER+ test here).  The cosine head's L2 normalisation stays float; ``--method entropy`` is ORT-only
    (``percentile`` maps to NNCF's mean-quantile range estimator).

Every output carries the source's edge-fer metadata plus ``edge_fer.precision=int8``,
is written atomically and is byte-identical for identical inputs.  ``OUT.json``
next to it records calibration, exclusions, timing, sizes and float-vs-INT8
agreement on a held-out fifth of the calibration images (never calibrated on).

``--method entropy|percentile`` on the ORT targets clip each activation at a KL-optimal
(never cutting more than 0.1% of values) or 99.99th-percentile |x|, from streaming histograms
(:mod:`edge_fer.quantize.activation_ranges`), so memory stays at one batch's activations whatever the
calibration set's size.  Entropy is the default there (:data:`DEFAULT_METHOD`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edge_fer import platform as host
from edge_fer.artifacts.atomic import check_sidecar, commit, refuse_inputs, staging_dir, write_json
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo, artifact_bytes
from edge_fer.data.preprocessing import preprocess
from edge_fer.export.onnx_export import compare_logits, save_onnx, set_metadata
from edge_fer.platform import peak_rss_mb
from edge_fer.quantize import activation_ranges
from edge_fer.train.metrics import batched_logits, compute_metrics

TARGETS = ("cpu", "jetson", "intel")
RECIPE = 5  # bumped whenever the same inputs would quantize differently (caches key INT8 artifacts on it)
METHODS = ("minmax", "entropy", "percentile")
# Measured on FER+ test with the reference model (benchmarks/results/*-calibration.md): entropy
# loses 0.49 pt on cpu where minmax loses 1.61 pt (same 93.1% agreement, 26 s instead of 19 s), and
# 1.93 pt on jetson where minmax loses 6.00.  TensorRT's own calibrator is entropy too.  NNCF has no
# KL search.  With the v1 model (224 px) its minmax beat mean-quantile (94.6% vs 93.3% agreement, 27 s vs
# 89 s); with the v2 model (64 px, BN neck, 2026-12-01, Intel Xeon with AVX-512 VNNI) minmax agreed on
# only 82.4% of the held-out calibration images (77.6% of FER+ test) and percentile on 98.0% in 10 s.
DEFAULT_METHOD = {"cpu": "entropy", "jetson": "entropy", "intel": "percentile"}
CALIB_BATCH = 8
HOLDOUT_EVERY = 5  # every 5th calibration image is held out for the agreement check
SENSITIVITY_IMAGES = 16  # activation SQNR for --max-drop ranking: a ranking signal, not a measurement
REPORT_FORMAT = "edge-fer-quantize-report/1"  # OUT.json only ever replaces a file that carries this


# ----------------------------------------------------------------------------- input model


def load_onnx(path: Path | str, classes: str | None = None, img_size: int | None = None
              ) -> tuple[onnx.ModelProto, ModelInfo]:
    """The model and its metadata; a foreign model needs ``classes`` and ``img_size`` by hand."""
    path = Path(path)
    if not path.is_file():
        raise EdgeFerError(f"{path}: file not found")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:  # DecodeError, ValidationError, ...
        raise EdgeFerError(f"{path}: not a valid ONNX model ({str(e).splitlines()[0][:200]}); "
                           "give the .onnx written by edge-fer export") from e
    if not proto.graph.node or not proto.graph.input:
        raise EdgeFerError(f"{path}: not a valid ONNX model (empty graph); give the .onnx written by edge-fer export")
    props = {p.key: p.value for p in proto.metadata_props}
    if classes or img_size:
        if not (classes and img_size):
            raise EdgeFerError(f"{path}: give both --classes and --img-size for a model without edge-fer metadata")
        info = ModelInfo.by_hand(classes, img_size)
    else:
        info = ModelInfo.from_strings(props, str(path))
    info.check_shapes(graph_dims(proto, "input"), graph_dims(proto, "output"), str(path))
    if props.get("edge_fer.precision") == "int8" or any(n.op_type == "QuantizeLinear" for n in proto.graph.node):
        raise EdgeFerError(f"{path}: already quantized; quantize the float model from edge-fer export")
    return proto, info


def graph_dims(proto: onnx.ModelProto, kind: str) -> list[int | None]:
    """Dimensions of the graph's first real input or output (None where dynamic)."""
    inits = {t.name for t in proto.graph.initializer}
    values = [v for v in (proto.graph.input if kind == "input" else proto.graph.output) if v.name not in inits]
    if not values:
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in values[0].type.tensor_type.shape.dim]


def report_path(out: Path) -> Path:
    """Where the report of the model ``out`` goes."""
    return out.with_suffix(".json")


def output_metadata(proto: onnx.ModelProto, info: ModelInfo, target: str, method: str) -> dict[str, str]:
    """Source edge-fer metadata + :class:`ModelInfo` + INT8 markers."""
    props = {p.key: p.value for p in proto.metadata_props if p.key.startswith("edge_fer.")}
    props.update(info.to_strings())
    props.update({"edge_fer.precision": "int8", "edge_fer.quant_target": target, "edge_fer.quant_method": method})
    return props


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


# ----------------------------------------------------------------------------- ONNX Runtime (cpu, jetson)


def _reader(batches: Sequence[np.ndarray], input_name: str):
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


def check_outputs(model: Path, out_path: Path, target: str, manifest: str | Path | None = None) -> list[Path]:
    """The files quantize will write (model, report, IR .bin), refused up front where they would destroy
    an input (the model, the calibration manifest) or a report edge-fer did not write for this model."""
    out = out_paths(Path(out_path), target)
    report_file = report_path(out)
    if not out.parent.is_dir():
        raise EdgeFerError(f"{out}: folder {out.parent} does not exist; create it or choose another output path")
    outputs = [out, report_file, *([out.with_suffix(".bin")] if target == "intel" else [])]
    refuse_inputs(outputs, [model, *([Path(manifest)] if manifest else [])])
    check_sidecar(report_file, REPORT_FORMAT, out)
    return outputs


@dataclass(frozen=True)
class OrtRecipe:
    """The ONNX Runtime quantization choices one run makes (every retry of ``--max-drop`` reuses them)."""

    target: str
    method: str
    per_channel: bool
    reduce_range: bool  # 7-bit weights: no int16 overflow in u8 x s8 products on CPUs without VNNI


def _ort_settings(recipe: OrtRecipe, n_batches: int) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    target, method = recipe.target, recipe.method
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    if target == "jetson":
        # AddQDQPairToWeight: float weights + Q + DQ instead of int8 initialisers + DQ, which TensorRT 8.x
        # rejects ("invalid weights type of Int8"); every TensorRT version folds the pair into int8 weights
        act, extra = QuantType.QInt8, {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                       "AddQDQPairToWeight": True}
    else:
        act, extra = QuantType.QUInt8, {"WeightSymmetric": True}
    if method == "minmax":
        # Reduce ranges every few batches: without it ORT keeps every intermediate tensor of every batch
        # (GBs at 224 px with 400+ images); min/max merge exactly, so the result is unchanged.  ORT 1.32
        # fails ("No data is collected") when the batch count is a multiple of it, so pick one that is not.
        every = next((k for k in range(4, 9) if n_batches % k), 0)
        if n_batches > 4 and every:
            extra["CalibMaxIntermediateOutputs"] = every
    return {"quant_format": QuantFormat.QDQ, "activation_type": act, "weight_type": QuantType.QInt8,
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


def weight_range(target: str, reduce_range: bool | None) -> tuple[bool, str]:
    """Whether weights use 7 bits (``reduce_range``) and why; ``None`` decides from this host's CPU.

    ONNX Runtime's and OpenVINO's x86 INT8 kernels multiply u8 activations by s8
    weights with vpmaddubsw where VNNI is missing: each pair of products lands in a
    saturating int16, which 8-bit weights can overflow.  7-bit weights cannot, and
    cost half a bit where VNNI would have summed exactly.
    """
    if target == "jetson":
        return False, "TensorRT computes int8 x int8 in int32: full 8-bit weights"
    if reduce_range is not None:
        return reduce_range, "as asked (--reduce-range/--full-range)"
    if host.has_int8_dot_product():
        return False, f"{host.cpu_name()} has VNNI (int8 dot products into int32): full 8-bit weights"
    return True, (f"{host.cpu_name()} lacks VNNI: u8 x s8 pairs sum into a saturating int16, so weights use 7 "
                  "bits (--full-range to override when the model will run on a VNNI CPU)")


def input_convs(model: onnx.ModelProto) -> list[str]:
    """Convolutions that read the model input directly (the stem)."""
    name = model.graph.input[0].name
    return [n.name for n in model.graph.node if n.op_type == "Conv" and name in n.input]


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


def ort_quantize(float_path: Path, out: Path, batches: Sequence[np.ndarray], recipe: OrtRecipe,
                 exclude: Sequence[str], ranges: Path, log: Callable[[str], None] = lambda _msg: None,
                 where: Path | str | None = None) -> None:
    """quantize_static into ``out`` (not atomic: callers write into a temp folder).

    ``ranges`` is the calibration cache: activation ranges are computed on the first call
    (ORT's minmax, or :mod:`edge_fer.quantize.activation_ranges` for entropy/percentile) and read back
    by every later call with the same float model, batches and recipe (``--max-drop`` retries).
    For ``cpu`` the input layer and the attention gates always stay float (:func:`cpu_float_nodes`).
    ``where`` is the user's model, named in errors (``float_path`` is a temp file by then gone).
    """
    import logging

    from onnxruntime.quantization import quantize_static

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # ORT logs "please pre-process" warnings on the root logger
    try:
        model = onnx.load(str(float_path), load_external_data=False)
        input_name = model.graph.input[0].name
        if recipe.target == "cpu":
            exclude = list(dict.fromkeys([*exclude, *cpu_float_nodes(model)]))
        if recipe.method != "minmax" and not ranges.exists():
            hists = activation_ranges.collect(
                float_path, batches, lambda done, total: log(f"{recipe.method} calibration: batch {done}/{total}"))
            activation_ranges.write_calibration_cache(ranges, hists, recipe.method, symmetric=recipe.target == "jetson")
        reader = None if ranges.exists() else _reader(batches, input_name)
        quantize_static(str(float_path), str(out), reader, nodes_to_exclude=list(exclude),
                        calibration_cache_path=str(ranges), **_ort_settings(recipe, len(batches)))
    except EdgeFerError:
        raise
    except Exception as e:
        raise EdgeFerError(f"{where or float_path}: ONNX Runtime quantization failed "
                           f"({str(e).splitlines()[0][:200]})") from e
    finally:
        logging.getLogger().setLevel(level)


def _int_values(init: dict[str, onnx.TensorProto], name: str) -> np.ndarray | None:
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
        scale = _int_values(init, dq.input[1])
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


# ----------------------------------------------------------------------------- OpenVINO / NNCF (intel)


def _nncf_params(method: str, per_channel: bool, reduce_range: bool):
    """NNCF's range estimator and weight scheme; ``reduce_range`` is its overflow fix on every layer."""
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if method == "entropy":
        raise EdgeFerError("--method entropy is ONNX Runtime's; for --target intel use minmax or percentile")
    estimator = RangeEstimatorParametersSet.MINMAX if method == "minmax" else RangeEstimatorParametersSet.MEAN_QUANTILE
    kwargs = {"activations_range_estimator_params": estimator,
              "overflow_fix": OverflowFix.ENABLE if reduce_range else OverflowFix.DISABLE}
    if not per_channel:
        kwargs["weights_quantization_params"] = QuantizationParameters(per_channel=False)
    return AdvancedQuantizationParameters(**kwargs)


OV_ALIASES = {"Conv": "Convolution", "Gemm": "MatMul"}
# The cosine head's L2 normalisation (x / clamp(||x||)) must stay float: NNCF otherwise puts a
# FakeQuantize on the clamped norm, whose tiny calibrated range zeroes every logit.
OV_FLOAT_TYPES = ["ReduceL2", "Clamp", "Divide"]


def _ov_nodes(model) -> list[tuple[str, str]]:
    return [(op.get_friendly_name(), op.get_type_name()) for op in model.get_ops()]


def float_convolutions(model) -> list[str]:
    """Convolutions of an NNCF-quantized OpenVINO model whose input is not fed by a FakeQuantize."""
    out = []
    for op in model.get_ops():
        if op.get_type_name() == "Convolution":
            src = op.input_value(0).get_node()
            if src.get_type_name() != "FakeQuantize":
                out.append(op.get_friendly_name())
    return out


def nncf_quantize(onnx_path: Path, batches: Sequence[np.ndarray], method: str, per_channel: bool,
                  reduce_range: bool, exclude: Sequence[str], accuracy: tuple[Callable, Sequence, float] | None = None):
    """The quantized ov.Model (plus the resolved ignored node names)."""
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = ov.convert_model(str(onnx_path))
    nodes = _ov_nodes(model)
    names = {n for n, _ in nodes}
    # OpenVINO splits a biased ONNX Conv into "<name>/WithoutBiases" + Add: accept the ONNX node name
    exclude = [e + "/WithoutBiases" if e not in names and e + "/WithoutBiases" in names else e for e in exclude]
    ignored = resolve_exclude(exclude, nodes, OV_ALIASES)
    kwargs = {"preset": nncf.QuantizationPreset.PERFORMANCE, "subset_size": len(batches),
              "ignored_scope": nncf.IgnoredScope(names=ignored, types=OV_FLOAT_TYPES, validate=False),
              "advanced_parameters": _nncf_params(method, per_channel, reduce_range)}
    dataset = nncf.Dataset(list(batches))
    if accuracy is None:
        return nncf.quantize(model, dataset, **kwargs), ignored
    validate, val_items, max_drop = accuracy
    quantized = nncf.quantize_with_accuracy_control(
        model, dataset, nncf.Dataset(list(val_items)), validation_fn=validate, max_drop=max(max_drop, 0.0),
        drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=kwargs.pop("advanced_parameters"),
        **kwargs)
    return quantized, ignored


def save_ir(model, out_xml: Path, props: dict[str, str]) -> None:
    """``openvino.save_model`` to a temp folder beside ``out_xml``, then rename .bin and .xml into place."""
    import openvino as ov

    if not out_xml.parent.is_dir():
        raise EdgeFerError(f"{out_xml}: folder {out_xml.parent} does not exist; "
                           "create it or choose another output path")
    for key, value in props.items():
        model.set_rt_info(value, key)
    # NNCF's new nodes get process-global auto names (Constant_106182): renumber them by graph order
    # so identical inputs give a byte-identical .xml
    for i, op in enumerate(model.get_ordered_ops()):
        if re.fullmatch(r"[A-Za-z]+_\d+", op.get_friendly_name()):
            op.set_friendly_name(f"{op.get_type_name()}_{i}")
    with staging_dir(out_xml) as tmp:
        ov.save_model(model, str(tmp / out_xml.name), compress_to_fp16=False)
        os.replace(tmp / out_xml.with_suffix(".bin").name, out_xml.with_suffix(".bin"))
        os.replace(tmp / out_xml.name, out_xml)


# ----------------------------------------------------------------------------- driver


def split_holdout(images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration, held-out): every ``HOLDOUT_EVERY``-th image is held out."""
    calib = [im for i, im in enumerate(images) if i % HOLDOUT_EVERY != HOLDOUT_EVERY - 1]
    held = [im for i, im in enumerate(images) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    return calib, held


def make_batches(images: Sequence[np.ndarray], info: ModelInfo, batch_size: int = CALIB_BATCH) -> list[np.ndarray]:
    return [preprocess(images[i:i + batch_size], info.preprocessing) for i in range(0, len(images), batch_size)]


def out_paths(out: Path, target: str) -> Path:
    """The model path: ``.onnx`` for cpu/jetson, ``.xml`` for intel (suffix added or checked)."""
    want = ".xml" if target == "intel" else ".onnx"
    if out.suffix.lower() in (".onnx", ".xml") and out.suffix.lower() != want:
        raise EdgeFerError(f"-o {out}: --target {target} writes a {want} file")
    return out if out.suffix.lower() == want else out.with_name(out.name + want)


def _open(path: Path, info: ModelInfo, target: str = "cpu"):
    """A runner with the numerics ``target`` deploys: a jetson QDQ is simulated (TensorRT accumulates
    in int32; ORT's x86 int8 kernels may saturate), cpu runs ORT's own int8 kernels."""
    if path.suffix == ".xml":
        from edge_fer.backends.openvino_backend import OpenVinoRunner
        return OpenVinoRunner.open(path)
    from edge_fer.backends.onnxruntime_backend import OrtRunner
    return OrtRunner.open(path, info=info, simulate_int8=target == "jetson")


def _accuracy(path: Path, info: ModelInfo, val: tuple[list[np.ndarray], np.ndarray], target: str = "cpu") -> float:
    logits = batched_logits(_open(path, info, target), val[0], info.preprocessing)
    return compute_metrics(logits, val[1], info.classes).accuracy


def load_val(folder: Path | str, info: ModelInfo, skips) -> tuple[list[np.ndarray], np.ndarray]:
    from edge_fer.data.dataset import load_images, scan_folder

    data = scan_folder(folder, info.classes)
    images, kept = load_images(data.paths, skips)
    if not images:
        raise EdgeFerError(f"--val {folder}: no readable images")
    return images, data.labels[np.asarray(kept, dtype=np.int64)]


def _sqnr_db(signal: float, noise: float) -> float:
    """Signal-to-quantization-noise ratio in dB (like ORT's qdq_loss_debug), capped for exact tensors."""
    if noise <= 0.0:
        return 100.0
    return float(10.0 * np.log10(max(signal, 1e-30) / noise))


def sensitivity(float_path: Path, qdq_path: Path, batches: Sequence[np.ndarray], candidates: Sequence[str]
                ) -> dict[str, tuple[float, str]]:
    """Per-node SQNR (dB, lower = more sensitive) of its quantized weight and input activation.

    Uses ORT's qdq_loss_debug: weight SQNR from the float vs QDQ initializers,
    activation SQNR from the QDQ model's own pre-quantize vs post-dequantize tensors.
    """
    import logging

    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_weight_error,
        create_activation_matching,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    logging.disable(logging.ERROR)  # "weight tensor ...bias0 not found": biases are not quantized, expected
    try:
        weight_err = compute_weight_error(create_weight_matching(str(float_path), str(qdq_path)))
        aug = qdq_path.with_name("qdq.aug.onnx")
        modify_model_output_intermediate_tensors(str(qdq_path), str(aug))
        input_name = onnx.load(str(float_path), load_external_data=False).graph.input[0].name
        # Every intermediate tensor is an output of the augmented model: run few images, a pair at a time,
        # and accumulate SQNR power sums, so memory stays ~2 images' activations even at 224 px.
        images = np.concatenate(list(batches))[:SENSITIVITY_IMAGES]
        signal: dict[str, float] = {}
        noise: dict[str, float] = {}
        step = min(2, len(batches[0]))  # a static batch-1 graph takes one image at a time
        for i in range(0, len(images), step):
            acts = collect_activations(str(aug), _reader([images[i:i + step]], input_name))
            for name, m in create_activation_matching(acts).items():
                if "pre_qdq" in m and "post_qdq" in m:
                    pre, post = np.asarray(m["pre_qdq"][0], np.float64), np.asarray(m["post_qdq"][0], np.float64)
                    signal[name] = signal.get(name, 0.0) + float(np.sum(pre * pre))
                    noise[name] = noise.get(name, 0.0) + float(np.sum((pre - post) ** 2))
        act_err = {name: {"qdq_err": _sqnr_db(signal[name], noise[name])} for name in signal}
    finally:
        logging.disable(logging.NOTSET)
    model = onnx.load(str(float_path), load_external_data=False)
    scores: dict[str, tuple[float, str]] = {}
    for node in model.graph.node:
        if node.name not in candidates:
            continue
        options = []
        for name in node.input:
            if name in weight_err:
                options.append((float(weight_err[name]), f"weight {name}"))
            elif name in act_err:
                options.append((float(act_err[name]["qdq_err"]), f"input activation {name}"))
        if options:
            scores[node.name] = min(options)
    return scores


def quantize(onnx_path: Path | str, out_path: Path | str, images: Sequence[np.ndarray], target: str = "cpu",
             method: str | None = None, per_channel: bool = True, exclude: Sequence[str] = (),
             calibration: dict | None = None, classes: str | None = None, img_size: int | None = None,
             max_drop: float | None = None, val: str | Path | None = None, reduce_range: bool | None = None,
             log: Callable[[str], None] = lambda _msg: None) -> dict:
    """Quantize ``onnx_path`` to INT8 for ``target``; writes the model and ``OUT.json``; returns the report.

    With ``max_drop`` and a labelled ``val`` folder, the most quantization-sensitive
    layers are kept float until top-1 accuracy drops by at most ``max_drop`` percentage
    points (the same unit as ``edge-fer bench --max-drop``).  ``reduce_range`` None
    picks 7- or 8-bit weights from this host's CPU (:func:`weight_range`); ``method``
    None takes the target's measured best (:data:`DEFAULT_METHOD`).
    """
    start = time.perf_counter()
    if target not in TARGETS:
        raise EdgeFerError(f"--target {target!r}: use one of {', '.join(TARGETS)}")
    method = method or DEFAULT_METHOD[target]
    if method not in METHODS:
        raise EdgeFerError(f"--method {method!r}: use one of {', '.join(METHODS)}")
    if (max_drop is None) != (val is None):
        raise EdgeFerError("--max-drop and --val go together: the accuracy budget is measured on labelled --val images")
    budget = None if max_drop is None else max_drop / 100.0  # points -> fraction of accuracy
    onnx_path = Path(onnx_path)
    manifest = (calibration or {}).get("source") if (calibration or {}).get("kind") == "manifest" else None
    outputs = check_outputs(onnx_path, Path(out_path), target, manifest)
    out, report_file = outputs[0], outputs[1]
    proto, info = load_onnx(onnx_path, classes, img_size)
    calib_images, held = split_holdout(images)
    # Whole batches only, so that every method and target calibrates on the same images.
    calib_images = calib_images[:len(calib_images) - len(calib_images) % CALIB_BATCH]
    if len(calib_images) < CALIB_BATCH:
        raise EdgeFerError(f"only {len(calib_images)} calibration images after holding out {len(held)} for the "
                           f"agreement check; need at least {CALIB_BATCH}")
    static = graph_dims(proto, "input")[:1]
    batches = make_batches(calib_images, info, static[0] if static and static[0] else CALIB_BATCH)
    props = output_metadata(proto, info, target, method)
    from edge_fer.data.dataset import SkipReport
    val_skips = SkipReport()
    val_data = load_val(val, info, val_skips) if val is not None else None
    narrow, why = weight_range(target, reduce_range)
    report: dict = {"format": REPORT_FORMAT, "model": str(onnx_path), "output": str(out),
                    "target": target, "method": method, "recipe": RECIPE,
                    "per_channel": per_channel, "reduce_range": {"enabled": narrow, "reason": why},
                    "calibration": {**(calibration or {}), "used": len(calib_images), "held_out": len(held)}}
    with staging_dir(out) as work:  # beside the output: removed on every exit, never left in /tmp
        (work / "out").mkdir()  # the files to commit, apart from the working files (whatever -o is named)
        staged = work / "out" / out.name
        set_metadata(proto, info.to_strings())  # by-hand metadata reaches the float reference too
        float_path = prepare_float(proto, work)
        if target == "intel":
            accuracy = None
            if val_data is not None:
                def validate(compiled, items) -> float:
                    # items: (one preprocessed image, its label); NNCF ranks on subsets of them
                    hits = [int(np.asarray(compiled(x)[compiled.output(0)]).argmax()) == y for x, y in items]
                    return float(np.mean(hits)) if hits else 0.0

                labelled = list(zip(make_batches(val_data[0], info, 1), val_data[1].tolist(), strict=True))
                accuracy = (validate, labelled, budget)
            log("calibrating with NNCF")
            model, excluded = nncf_quantize(float_path, batches, method, per_channel, narrow, exclude, accuracy)
            save_ir(model, staged, props)
            report["excluded"] = excluded
            if val_data is not None:
                why = ("float in the final IR: either NNCF never quantizes it (e.g. CBAM spatial conv, shared-"
                       "weight MLP branch) or accuracy control reverted it to meet --max-drop on --val")
                report["kept_float"] = [{"node": n, "reason": why}
                                        for n in float_convolutions(model) if n not in excluded]
        else:
            float_proto = onnx.load(str(float_path))
            nodes = [(n.name, n.op_type) for n in float_proto.graph.node]
            excluded = resolve_exclude(exclude, nodes)
            qdq = work / "int8.onnx"
            log("calibrating with ONNX Runtime")
            recipe = OrtRecipe(target, method, per_channel, narrow)
            ranges = work / "ranges.json"
            ort_quantize(float_path, qdq, batches, recipe, excluded, ranges, log, where=onnx_path)
            if val_data is not None:
                excluded, report["accuracy_control"] = _bound_drop(
                    float_path, qdq, batches, recipe, ranges, excluded, nodes, info, val_data, budget, log, onnx_path)
            qproto = onnx.load(str(qdq))
            set_metadata(qproto, props)
            if target == "jetson":
                problems = check_tensorrt_qdq(qproto)
                if problems:
                    raise EdgeFerError(f"{out}: QDQ graph breaks TensorRT rules: {'; '.join(problems[:5])}")
                report["tensorrt_qdq_check"] = "passed"
            save_onnx(qproto, staged)
            report["excluded"] = excluded
            if target == "cpu":
                report["cpu_float"] = [{"node": n, "reason": why} for n, why in cpu_float_nodes(float_proto).items()]
        report["quantize_seconds"] = round(time.perf_counter() - start, 2)
        if held:
            reference = _open(float_path, info)
            cmp = compare_logits(batched_logits(reference, held, info.preprocessing),
                                 batched_logits(_open(staged, info, target), held, info.preprocessing))
            report["float_vs_int8_heldout"] = cmp.to_dict()
        if val_data is not None:
            report["val"] = {"folder": str(val), "n": len(val_data[0]), "skipped": len(val_skips.skipped),
                             "float_accuracy": _accuracy(float_path, info, val_data),
                             "int8_accuracy": _accuracy(staged, info, val_data, target), "max_drop_pt": max_drop}
        report["sizes_bytes"] = {"float": onnx_path.stat().st_size, "int8": artifact_bytes(staged)}
        report["total_seconds"] = round(time.perf_counter() - start, 2)
        report["peak_rss_mb"] = round(peak_rss_mb(), 1)
        write_json(work / "out" / report_file.name, report)
        # model (+ .bin) and report land together: no model without its report, none beside an old one
        commit([(work / "out" / f.name, f) for f in outputs])
    return report


def _bound_drop(float_path: Path, qdq: Path, batches, recipe: OrtRecipe, ranges: Path, excluded: list[str],
                nodes, info, val_data, max_drop: float, log, where: Path) -> tuple[list[str], dict]:
    """Keep the most sensitive layers float (1, 2, 4, ... of them) until the val accuracy drop fits."""
    base = _accuracy(float_path, info, val_data)
    acc = _accuracy(qdq, info, val_data, recipe.target)
    trials = [{"kept_float": 0, "int8_accuracy": acc}]
    control = {"float_accuracy": base, "max_drop": max_drop, "trials": trials, "kept_float": []}
    if base - acc <= max_drop:
        control["met"] = True
        return excluded, control
    candidates = quantized_nodes(onnx.load(str(qdq)), {n for n, _ in nodes} - set(excluded))
    scores = sensitivity(float_path, qdq, batches, candidates)
    ranked = sorted(scores, key=lambda n: (scores[n][0], n))
    tried: list[tuple[float, int, list[str]]] = [(acc, 0, [])]
    k = 1
    while ranked:
        k = min(k, len(ranked))
        keep = ranked[:k]
        log(f"accuracy {acc:.2%} vs float {base:.2%}: keeping {k} most sensitive layers float")
        ort_quantize(float_path, qdq, batches, recipe, [*excluded, *keep], ranges, where=where)
        acc = _accuracy(qdq, info, val_data, recipe.target)
        trials.append({"kept_float": k, "int8_accuracy": acc})
        tried.append((acc, k, keep))
        if base - acc <= max_drop or k == len(ranked):
            break
        k *= 2
    control["met"] = base - acc <= max_drop
    best = tried[-1][2]
    if not control["met"]:  # unreachable budget: ship the most accurate trial (fewest float layers on ties)
        acc, k, best = max(tried, key=lambda t: (t[0], -t[1]))
        ort_quantize(float_path, qdq, batches, recipe, [*excluded, *best], ranges, where=where)
        control["note"] = (f"budget not reachable by keeping layers float (best INT8 accuracy {acc:.2%} vs float "
                           f"{base:.2%}); wrote the most accurate trial ({k} layers float)")
        log(control["note"])
    if ranked and len(best) == len(ranked):
        control["warning"] = (f"all {len(ranked)} quantized layers had to stay float: the output is effectively "
                              "the float model; per-layer fallback cannot meet this budget (try more calibration "
                              "images, --method percentile/entropy, or a larger --max-drop)")
        log(control["warning"])
    control["kept_float"] = [{"node": n, "op": dict(nodes).get(n, ""), "sqnr_db": round(scores[n][0], 2),
                              "reason": f"among the lowest SQNR ({scores[n][0]:.1f} dB on its {scores[n][1]})"}
                             for n in best]
    return [*excluded, *best], control


def quantized_nodes(qdq: onnx.ModelProto, names: set[str]) -> list[str]:
    """Nodes of ``names`` that read at least one DequantizeLinear output in the QDQ graph."""
    dq_out = {o for n in qdq.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in qdq.graph.node if n.name in names and any(i in dq_out for i in n.input)]

