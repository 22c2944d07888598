"""Where the jetson recipe puts Q/DQ, and which calibration method goes with it: chosen on FER+ val, reported on test.

Each variant quantizes the shipped reference model through edge-fer's own ONNX Runtime step
(:func:`edge_fer.quantize.ort.ort_quantize`, the calibration images and batches of ``edge-fer quantize``:
``calibration/ferplus-train-512.txt`` less its held-out fifth) and runs the QDQ graph the way edge-fer
simulates TensorRT (ORT with graph optimisation off: each Q/DQ pair is float rounding, int32-exact).
The placements are the ones recipe 6 and 7 wrote, rebuilt here by overriding the recipe's ORT
settings and its always-float nodes:

* ``every op``: recipe 6, ORT's default op list (Conv, Add, Mul, Sigmoid, pooling, MatMul, ...), outputs too;
* ``conv in+out``: Q/DQ on convolution inputs and outputs;
* ``conv in+out, spatial float``: the same, CBAM's spatial-attention convs float;
* ``conv inputs, spatial float``: recipe 7 to 9 (NVIDIA's advice: quantize the inputs of weighted layers);
* ``conv inputs, spatial + depthwise float``: recipe 10 (``--depthwise float``, benchmarks/depthwise.py).

With conv-input placement, spatial float: on the first v2 model entropy 97.71%, percentile 97.60% of val
(recipe 7 shipped entropy); on the next, percentile 98.44%, entropy 98.05% (recipe 8: percentile); on the
shipped mirror-averaging model percentile 98.82%, and 99.13% with the depthwise convs float too (recipe 10);
with percentile at 99.999 (recipe 11) 98.78% and 99.41%.

A graph written by NVIDIA ModelOpt (``--modelopt-onnx``, made by ``benchmarks/modelopt_eval.py``) is
scored beside them. The choice is made on val agreement only; test is reported, never tuned on.

    .venv/bin/python benchmarks/jetson_placement.py [--modelopt-onnx WORK/modelopt-entropy.onnx]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.calibration_methods import DATA, MODEL, float_reference, machine_name  # noqa: E402
from benchmarks.modelopt_eval import qdq_placement  # noqa: E402
from edge_fer import platform as host  # noqa: E402
from edge_fer.artifacts.atomic import write_json, write_text  # noqa: E402
from edge_fer.artifacts.checkpoint import sha256_file  # noqa: E402
from edge_fer.backends.onnxruntime_backend import OrtRunner  # noqa: E402
from edge_fer.bench.measure import parity  # noqa: E402
from edge_fer.data.dataset import SkipReport, load_labelled  # noqa: E402
from edge_fer.quantize import ort  # noqa: E402
from edge_fer.quantize.calibration import load_calibration  # noqa: E402
from edge_fer.quantize.options import Recipe  # noqa: E402
from edge_fer.quantize.run import RECIPE, calibration_split, make_batches  # noqa: E402
from edge_fer.train.metrics import batched_logits  # noqa: E402

MANIFEST = ROOT / "calibration" / "ferplus-train-512.txt"
# placement: (the recipe's op types, else ORT's default list; conv outputs quantized too; the recipe's float
# nodes; depthwise convs float too)
PLACEMENTS = {
    "every op": (False, True, False, False),
    "conv in+out": (True, True, False, False),
    "conv in+out, spatial float": (True, True, True, False),
    "conv inputs, spatial float": (True, False, True, False),
    "conv inputs, spatial + depthwise float": (True, False, True, True),
}
VARIANTS = [("every op", "entropy"), ("every op", "percentile"), ("every op", "minmax"),
            ("conv in+out", "percentile"), ("conv in+out, spatial float", "percentile"),
            ("conv inputs, spatial float", "entropy"), ("conv inputs, spatial float", "percentile"),
            ("conv inputs, spatial float", "minmax"), ("conv inputs, spatial + depthwise float", "percentile")]
SHIPPED = ("conv inputs, spatial + depthwise float", "percentile")  # what recipe 10 writes by default


def settings_for(placement: str) -> tuple[Callable, Callable]:
    """The recipe's ORT settings and always-float nodes, rebuilt for ``placement``."""
    recipe_ops, outputs, spatial, _depthwise = PLACEMENTS[placement]
    base_settings, base_float = ort._ort_settings, ort.recipe_float_nodes

    def settings(recipe: Recipe) -> dict:
        out = {**base_settings(recipe)}
        out["extra_options"] = {**out["extra_options"]}
        if not recipe_ops:
            del out["op_types_to_quantize"]
        if outputs:
            del out["extra_options"]["OpTypesToExcludeOutputQuantization"]
        return out

    def float_nodes(model: onnx.ModelProto, recipe: Recipe) -> dict[str, str]:
        return base_float(model, recipe) if spatial else {}

    return settings, float_nodes


def quantize_variant(float_path: Path, batches: list[np.ndarray], placement: str, method: str, out: Path) -> float:
    """One QDQ graph into ``out`` through edge-fer's ORT step with ``placement``; returns seconds."""
    saved = ort._ort_settings, ort.recipe_float_nodes
    ort._ort_settings, ort.recipe_float_nodes = settings_for(placement)
    try:
        start = time.perf_counter()
        recipe = Recipe("jetson", method, True, False, depthwise_float=PLACEMENTS[placement][3])
        ort.ort_quantize(ort.OrtRun(float_path, batches, recipe, out.with_suffix(f".{method}.ranges")), out, [])
        return time.perf_counter() - start
    finally:
        ort._ort_settings, ort.recipe_float_nodes = saved


def placement_counts(model: onnx.ModelProto) -> dict:
    """Q nodes, convolutions whose input is int8, and TensorRT's rules (from ``modelopt_eval.qdq_placement``)."""
    placement = qdq_placement(model)
    conv = placement["ops"]["Conv"]
    return {"q_nodes": placement["quantize_nodes"], "int8_convs": f"{conv['int8_in']}/{conv['nodes']}",
            "tensorrt_rules": placement["edge_fer_tensorrt_rules"] == []}


def score(path: Path, splits: dict, reference: dict) -> dict:
    runner = OrtRunner.open(path, threads=2, info=splits["info"], simulate_int8=True)
    out = {}
    for split in ("val", "test"):
        images, labels = splits[split]
        logits = batched_logits(runner, images, splits["info"].preprocessing)
        p = parity(reference[split], logits, labels, splits["info"].classes)
        out[split] = {"accuracy": p["accuracy"], "drop_pt": p["accuracy_drop_pt"], "agreement": p["top1_agreement"]}
    return out


def markdown(rows: dict, float_acc: dict, chosen: str, cmd: str, sha: str) -> str:
    lines = [
        "# jetson INT8: Q/DQ placement and calibration method (simulated TensorRT numerics)", "",
        f"Reference model `edge_fer/models/fernet-ferplus` (weights sha256 `{sha[:16]}…`); calibrated on "
        f"`{MANIFEST.relative_to(ROOT)}` less its "
        "held-out fifth (the images and batches of `edge-fer quantize`); each QDQ graph run by ONNX Runtime with "
        f"graph optimisation off (Q/DQ as float rounding, as edge-fer simulates TensorRT), on {host.cpu_name()} "
        f"({machine_name()}). No TensorRT ran. Float accuracy: val {float_acc['val']:.2%}, test "
        f"{float_acc['test']:.2%}. Highest val agreement: **{chosen}**; recipe {RECIPE} ships "
        f"{' / '.join(SHIPPED)} (`edge-fer quantize --target jetson`). Test is reported only, never used to choose.",
        "",
        "| placement | method | Q nodes | int8 convs | TensorRT rules | val agreement | val drop pt | "
        "test agreement | test drop pt | test acc |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        v, t = r["val"], r["test"]
        mark = "**" if name == chosen else ""
        lines.append(f"| {mark}{r['placement']}{mark} | {r['method']} | {r['q_nodes']} | {r['int8_convs']} | "
                     f"{'pass' if r['tensorrt_rules'] else 'FAIL'} | {v['agreement']:.2%} | {v['drop_pt']:.2f} | "
                     f"{t['agreement']:.2%} | {t['drop_pt']:.2f} | {t['accuracy']:.2%} |")
    lines += ["", f"Recorded with: `.venv/bin/python {cmd}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modelopt-onnx", type=Path, help="a ModelOpt int8 QDQ graph of the same model, to score")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32, runner, test_images, test_labels, test_logits = float_reference(work)
        info = runner.info
        val_images, val_labels = load_labelled(DATA / "val", info.classes, SkipReport())
        splits = {"info": info, "val": (val_images, val_labels), "test": (test_images, test_labels)}
        reference = {"val": batched_logits(runner, val_images, info.preprocessing), "test": test_logits}
        float_acc = {k: float(np.mean(reference[k].argmax(1) == splits[k][1])) for k in ("val", "test")}
        images, _desc = load_calibration(str(MANIFEST), 512, 0, SkipReport())
        batches = make_batches(calibration_split(images)[0], info)
        float_path = ort.prepare_float(onnx.load(str(fp32)), work)
        rows: dict = {}
        for placement, method in VARIANTS:
            name = f"{placement} / {method}"
            out = work / f"v{len(rows)}.onnx"
            seconds = quantize_variant(float_path, batches, placement, method, out)
            rows[name] = {"placement": placement, "method": method, "quantize_s": round(seconds, 1),
                          **placement_counts(onnx.load(str(out))), **score(out, splits, reference)}
            print(name, rows[name]["val"], rows[name]["test"], flush=True)
        if args.modelopt_onnx:
            rows["ModelOpt int8 / entropy"] = {"placement": "ModelOpt int8", "method": "entropy (ModelOpt's)",
                                               **placement_counts(onnx.load(str(args.modelopt_onnx))),
                                               **score(args.modelopt_onnx, splits, reference)}
    chosen = max((n for n in rows if rows[n]["placement"] != "ModelOpt int8"),
                 key=lambda n: rows[n]["val"]["agreement"])
    if (rows[chosen]["placement"], rows[chosen]["method"]) != SHIPPED:
        print(f"note: val picks {chosen}; recipe {RECIPE} ships {' / '.join(SHIPPED)}", flush=True)
    cmd = "benchmarks/jetson_placement.py" + (f" --modelopt-onnx WORK/{args.modelopt_onnx.name}"
                                              if args.modelopt_onnx else "")
    sha = sha256_file(MODEL / "model.safetensors")
    result = {"machine": host.cpu_name(), "model_sha256": sha, "float_accuracy": float_acc,
              "chosen_on_val": chosen, "rows": rows, "command": cmd}
    stem = ROOT / "benchmarks" / "results" / f"{machine_name()}-jetson_placement"
    write_json(stem.with_suffix(".json"), result)
    write_text(stem.with_suffix(".md"), markdown(rows, float_acc, chosen, cmd, sha))
    print(f"wrote {stem}.md", flush=True)


if __name__ == "__main__":
    main()
