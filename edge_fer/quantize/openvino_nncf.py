"""NNCF quantization of the OpenVINO model (``--target intel``), with accuracy control for ``--max-drop``;
the same scheme as a QDQ ONNX graph for ``--qat``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.quantize.exclude import mirror_nodes, resolve_exclude
from edge_fer.quantize.options import Recipe


def _nncf_params(recipe: Recipe):
    """NNCF's range estimator and weight scheme; ``recipe.reduce_range`` is its overflow fix on every layer."""
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if recipe.method == "entropy":
        raise EdgeFerError("--method entropy is ONNX Runtime's; for --target intel use minmax or percentile")
    estimator = (RangeEstimatorParametersSet.MINMAX if recipe.method == "minmax"
                 else RangeEstimatorParametersSet.MEAN_QUANTILE)
    kwargs = {"activations_range_estimator_params": estimator,
              "overflow_fix": OverflowFix.ENABLE if recipe.reduce_range else OverflowFix.DISABLE}
    if not recipe.per_channel:
        kwargs["weights_quantization_params"] = QuantizationParameters(per_channel=False)
    return AdvancedQuantizationParameters(**kwargs)


OV_ALIASES = {"Conv": "Convolution", "Gemm": "MatMul"}


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
        if op.get_type_name() == "Convolution":
            src = op.input_value(0).get_node()
            if src.get_type_name() != "FakeQuantize":
                out.append(op.get_friendly_name())
    return out


def _ov_mirror_nodes(onnx_path: Path) -> list[str]:
    """:func:`mirror_nodes` under OpenVINO's names: the node that writes a graph output takes the output's name."""
    proto = onnx.load(str(onnx_path), load_external_data=False)
    outputs = {o.name for o in proto.graph.output}
    mirror = set(mirror_nodes(proto))
    return [next((o for o in n.output if o in outputs), n.name) for n in proto.graph.node if n.name in mirror]


def nncf_quantize(onnx_path: Path, batches: Sequence[np.ndarray], recipe: Recipe, exclude: Sequence[str],
                  accuracy: tuple[Callable, Sequence, float] | None = None):
    """The quantized ov.Model (plus the resolved ignored node names); ``accuracy``: NNCF's accuracy control
    (validation function, labelled items, largest drop)."""
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = ov.convert_model(str(onnx_path))
    nodes = _ov_nodes(model)
    names = {n for n, _ in nodes}
    # OpenVINO splits a biased ONNX Conv into "<name>/WithoutBiases" + Add: accept the ONNX node name
    exclude = [e + "/WithoutBiases" if e not in names and e + "/WithoutBiases" in names else e for e in exclude]
    ignored = resolve_exclude(exclude, nodes, OV_ALIASES) + _ov_mirror_nodes(onnx_path)
    kwargs = {"preset": nncf.QuantizationPreset.PERFORMANCE, "subset_size": len(batches),
              "ignored_scope": nncf.IgnoredScope(names=ignored, types=OV_FLOAT_TYPES, validate=False),
              "advanced_parameters": _nncf_params(recipe)}
    dataset = nncf.Dataset(list(batches))
    if accuracy is None:
        return nncf.quantize(model, dataset, **kwargs), ignored
    validate, val_items, max_drop = accuracy
    quantized = nncf.quantize_with_accuracy_control(
        model, dataset, nncf.Dataset(list(val_items)), validation_fn=validate, max_drop=max(max_drop, 0.0),
        drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=kwargs.pop("advanced_parameters"),
        **kwargs)
    return quantized, ignored


def nncf_qdq(onnx_path: Path, batches: Sequence[np.ndarray], recipe: Recipe, exclude: Sequence[str]
             ) -> onnx.ModelProto:
    """NNCF's intel scheme as a QDQ ONNX graph (NNCF's ONNX backend, the settings of :func:`nncf_quantize`).

    QAT fine-tunes this graph; OpenVINO then converts its Q/DQ pairs into FakeQuantize nodes.
    """
    import logging

    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = onnx.load(str(onnx_path))
    ignored = resolve_exclude(exclude, [(n.name, n.op_type) for n in model.graph.node]) + mirror_nodes(model)
    name = model.graph.input[0].name
    return nncf.quantize(model, nncf.Dataset(list(batches), lambda b: {name: b}),
                         preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(batches),
                         ignored_scope=nncf.IgnoredScope(names=ignored, types=ONNX_FLOAT_TYPES, validate=False),
                         advanced_parameters=_nncf_params(recipe))
