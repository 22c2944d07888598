"""NNCF quantization of the OpenVINO model (``--target intel``), with accuracy control for ``--max-drop``;
the same scheme as a QDQ ONNX graph for ``--qat``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.quantize.exclude import MIRROR_REASON, depthwise_float_nodes, mirror_nodes, resolve_exclude
from edge_fer.quantize.options import Recipe


def _nncf_params(recipe: Recipe):
    """NNCF's range estimator and weight scheme; ``recipe.reduce_range`` is its overflow fix on every layer.

    ``percentile`` is NNCF's mean-quantile estimator with the outlier probability ``1 - percentile/100``.
    """
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import (
        AggregatorType,
        RangeEstimatorParameters,
        RangeEstimatorParametersSet,
        StatisticsCollectorParameters,
        StatisticsType,
    )

    if recipe.method == "entropy":
        raise EdgeFerError("--method entropy is ONNX Runtime's; for --target intel use minmax or percentile")
    if recipe.method == "minmax":
        estimator = RangeEstimatorParametersSet.MINMAX
    else:  # NNCF's MEAN_QUANTILE (per-batch quantiles, averaged) at the recipe's percentile instead of 99.99
        side = StatisticsCollectorParameters(statistics_type=StatisticsType.QUANTILE,
                                             aggregator_type=AggregatorType.MEAN,
                                             quantile_outlier_prob=1.0 - recipe.percentile / 100.0)
        estimator = RangeEstimatorParameters(min=side, max=side)
    kwargs = {"activations_range_estimator_params": estimator,
              "overflow_fix": OverflowFix.ENABLE if recipe.reduce_range else OverflowFix.DISABLE}
    if not recipe.per_channel:
        kwargs["weights_quantization_params"] = QuantizationParameters(per_channel=False)
    return AdvancedQuantizationParameters(**kwargs)


OV_ALIASES = {"Conv": ("Convolution", "GroupConvolution"), "Gemm": ("MatMul",), "Mul": ("Multiply",),
              "Div": ("Divide",), "Clip": ("Clamp",)}


# The cosine head's L2 normalisation (x / clamp(||x||)) must stay float: NNCF otherwise puts a
# FakeQuantize on the clamped norm, whose tiny calibrated range zeroes every logit.
OV_FLOAT_TYPES = ["ReduceL2", "Clamp", "Divide"]
ONNX_FLOAT_TYPES = ["ReduceL2", "Clip", "Div"]  # the same ops under their ONNX names (NNCF's ONNX backend)


def _ov_nodes(model) -> list[tuple[str, str]]:
    return [(op.get_friendly_name(), op.get_type_name()) for op in model.get_ops()]


def float_convolutions(model) -> list[str]:
    """Convolutions of an NNCF-quantized OpenVINO model whose input is not fed by a FakeQuantize."""
    out = []
    for op in model.get_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution"):
            src = op.input_value(0).get_node()
            if src.get_type_name() != "FakeQuantize":
                out.append(op.get_friendly_name())
    return out


def intel_float_nodes(model: onnx.ModelProto, recipe: Recipe) -> dict[str, str]:
    """ONNX nodes the intel recipe keeps float (beside ``--exclude`` and the head's normalisation), with reasons."""
    out = depthwise_float_nodes(model, "intel") if recipe.depthwise_float else {}
    return {**out, **dict.fromkeys(mirror_nodes(model), MIRROR_REASON)}


def _ov_conv_name(name: str, ov_names: set[str]) -> str:
    """OpenVINO splits a biased ONNX Conv into ``<name>/WithoutBiases`` plus an Add that keeps the ONNX name:
    the ONNX name means the convolution."""
    return name + "/WithoutBiases" if name + "/WithoutBiases" in ov_names else name


def _ov_names(model: onnx.ModelProto, nodes: Sequence[str], ov_names: set[str]) -> list[str]:
    """ONNX node names as OpenVINO names them: a node writing a graph output takes the output's name, and a
    biased Conv its convolution's (:func:`_ov_conv_name`)."""
    outputs = {o.name for o in model.graph.output}
    wanted = set(nodes)
    return [_ov_conv_name(next((o for o in n.output if o in outputs), n.name), ov_names)
            for n in model.graph.node if n.name in wanted]


class IntelQuantized(NamedTuple):
    """What :func:`nncf_quantize` made, and what it kept float and why (the quantize report's entries)."""

    model: Any  # ov.Model (openvino is imported lazily)
    excluded: list[str]  # the user's --exclude, under OpenVINO's names
    recipe_float: list[str]  # the recipe's float nodes, under OpenVINO's names
    recipe_reasons: dict[str, str]  # the same nodes under their ONNX names -> why (:func:`intel_float_nodes`)


def nncf_quantize(onnx_path: Path, batches: Sequence[np.ndarray], recipe: Recipe, exclude: Sequence[str],
                  accuracy: tuple[Callable, Sequence, float] | None = None) -> IntelQuantized:
    """The quantized ov.Model with the user's ``exclude`` and the recipe's float nodes kept float;
    ``accuracy``: NNCF's accuracy control (validation function, labelled items, largest drop)."""
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = ov.convert_model(str(onnx_path))
    nodes = _ov_nodes(model)
    names = {n for n, _ in nodes}
    exclude = [_ov_conv_name(e, names) for e in exclude]
    proto = onnx.load(str(onnx_path), load_external_data=False)
    excluded = resolve_exclude(exclude, nodes, OV_ALIASES)
    reasons = intel_float_nodes(proto, recipe)
    recipe_float = _ov_names(proto, list(reasons), names)
    kwargs = {"preset": nncf.QuantizationPreset.PERFORMANCE, "subset_size": len(batches),
              "ignored_scope": nncf.IgnoredScope(names=list(dict.fromkeys(excluded + recipe_float)),
                                                 types=OV_FLOAT_TYPES, validate=False),
              "advanced_parameters": _nncf_params(recipe)}
    dataset = nncf.Dataset(list(batches))
    if accuracy is None:
        return IntelQuantized(nncf.quantize(model, dataset, **kwargs), excluded, recipe_float, reasons)
    validate, val_items, max_drop = accuracy
    quantized = nncf.quantize_with_accuracy_control(
        model, dataset, nncf.Dataset(list(val_items)), validation_fn=validate, max_drop=max(max_drop, 0.0),
        drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=kwargs.pop("advanced_parameters"),
        **kwargs)
    return IntelQuantized(quantized, excluded, recipe_float, reasons)


def nncf_qdq(onnx_path: Path, batches: Sequence[np.ndarray], recipe: Recipe, exclude: Sequence[str]
             ) -> onnx.ModelProto:
    """NNCF's intel scheme as a QDQ ONNX graph (NNCF's ONNX backend, the settings of :func:`nncf_quantize`).

    QAT fine-tunes this graph; OpenVINO then converts its Q/DQ pairs into FakeQuantize nodes.
    """
    import logging

    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = onnx.load(str(onnx_path))
    ignored = list(dict.fromkeys(resolve_exclude(exclude, [(n.name, n.op_type) for n in model.graph.node])
                                 + list(intel_float_nodes(model, recipe))))
    name = model.graph.input[0].name
    return nncf.quantize(model, nncf.Dataset(list(batches), lambda b: {name: b}),
                         preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(batches),
                         ignored_scope=nncf.IgnoredScope(names=ignored, types=ONNX_FLOAT_TYPES, validate=False),
                         advanced_parameters=_nncf_params(recipe))
