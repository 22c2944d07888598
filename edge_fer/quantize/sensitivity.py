"""``--max-drop`` on the ONNX Runtime targets: rank layers by quantization noise (SQNR), keep the
most sensitive float until the labelled val accuracy drop fits the budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.quantize.ort import OrtRun, calibration_reader, ort_quantize
from edge_fer.train.metrics import batched_logits, compute_metrics

SENSITIVITY_IMAGES = 16  # activation SQNR for --max-drop ranking: a ranking signal, not a measurement


def open_for_target(path: Path, info: ModelInfo, target: str = "cpu"):
    """A runner with the numerics ``target`` deploys: a jetson QDQ is simulated (TensorRT accumulates
    in int32; ORT's x86 int8 kernels may saturate), cpu runs ORT's own int8 kernels."""
    if path.suffix == ".xml":
        from edge_fer.backends.openvino_backend import OpenVinoRunner
        return OpenVinoRunner.open(path, info=info)
    from edge_fer.backends.onnxruntime_backend import OrtRunner
    return OrtRunner.open(path, info=info, simulate_int8=target == "jetson")


def val_accuracy(path: Path, info: ModelInfo, val: tuple[list[np.ndarray], np.ndarray], target: str = "cpu"
                 ) -> float:
    """Top-1 accuracy of the artifact at ``path`` on labelled ``val`` images, with the numerics ``target`` deploys."""
    logits = batched_logits(open_for_target(path, info, target), val[0], info.preprocessing)
    return compute_metrics(logits, val[1], info.classes).accuracy


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
            acts = collect_activations(str(aug), calibration_reader([images[i:i + step]], input_name))
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


@dataclass(frozen=True)
class DropBudget:
    """``--max-drop`` as :func:`bound_drop` measures it: the labelled val images, the metadata that preprocesses
    them, and the largest accuracy drop allowed (a fraction of accuracy, not points)."""

    info: ModelInfo
    val_data: tuple[list[np.ndarray], np.ndarray]
    max_drop: float


def bound_drop(run: OrtRun, qdq: Path, excluded: list[str], nodes: Sequence[tuple[str, str]], budget: DropBudget
               ) -> tuple[list[str], dict]:
    """Keep the most sensitive layers float (1, 2, 4, ... of them) until the val accuracy drop fits ``budget``;
    ``qdq`` holds ``run``'s first quantization and is rewritten by each trial; ``nodes``: the float graph's
    (name, op type)."""
    info, val_data, max_drop, target = budget.info, budget.val_data, budget.max_drop, run.recipe.target
    base = val_accuracy(run.float_path, info, val_data)
    acc = val_accuracy(qdq, info, val_data, target)
    trials = [{"kept_float": 0, "int8_accuracy": acc}]
    control = {"float_accuracy": base, "max_drop": max_drop, "trials": trials, "kept_float": []}
    if base - acc <= max_drop:
        control["met"] = True
        return excluded, control
    candidates = quantized_nodes(onnx.load(str(qdq)), {n for n, _ in nodes} - set(excluded))
    scores = sensitivity(run.float_path, qdq, run.batches, candidates)
    ranked = sorted(scores, key=lambda n: (scores[n][0], n))
    tried: list[tuple[float, int, list[str]]] = [(acc, 0, [])]
    k = 1
    while ranked:
        k = min(k, len(ranked))
        keep = ranked[:k]
        run.log(f"accuracy {acc:.2%} vs float {base:.2%}: keeping {k} most sensitive layers float")
        ort_quantize(run, qdq, [*excluded, *keep])
        acc = val_accuracy(qdq, info, val_data, target)
        trials.append({"kept_float": k, "int8_accuracy": acc})
        tried.append((acc, k, keep))
        if base - acc <= max_drop or k == len(ranked):
            break
        k *= 2
    control["met"] = base - acc <= max_drop
    best = tried[-1][2]
    if not control["met"]:  # unreachable budget: ship the most accurate trial (fewest float layers on ties)
        acc, k, best = max(tried, key=lambda t: (t[0], -t[1]))
        ort_quantize(run, qdq, [*excluded, *best])
        control["note"] = (f"budget not reachable by keeping layers float (best INT8 accuracy {acc:.2%} vs float "
                           f"{base:.2%}); wrote the most accurate trial ({k} layers float)")
        run.log(control["note"])
    if ranked and len(best) == len(ranked):
        control["warning"] = (f"all {len(ranked)} quantized layers had to stay float: the output is effectively "
                              "the float model; per-layer fallback cannot meet this budget (try more calibration "
                              "images, --method percentile/entropy, or a larger --max-drop)")
        run.log(control["warning"])
    control["kept_float"] = [{"node": n, "op": dict(nodes).get(n, ""), "sqnr_db": round(scores[n][0], 2),
                              "reason": f"among the lowest SQNR ({scores[n][0]:.1f} dB on its {scores[n][1]})"}
                             for n in best]
    return [*excluded, *best], control


def quantized_nodes(qdq: onnx.ModelProto, names: set[str]) -> list[str]:
    """Nodes of ``names`` that read at least one DequantizeLinear output in the QDQ graph."""
    dq_out = {o for n in qdq.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in qdq.graph.node if n.name in names and any(i in dq_out for i in n.input)]
