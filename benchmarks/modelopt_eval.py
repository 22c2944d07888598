"""NVIDIA ModelOpt beside edge-fer for the Jetson artifacts: INT8 Q/DQ placement and parity, fp16 conversion.

Issue 15 asks whether ``modelopt.onnx.quantization`` (ModelOpt's ONNX PTQ, calibrated on the CPU) should
replace edge-fer's jetson QDQ, and whether ModelOpt's AutoCast should replace ``edge_fer/build/float16.py``
for strongly typed fp16 builds.  Both sides start from the same float ONNX (``edge-fer export`` of the
shipped 64 px reference model) and the INT8 sides calibrate on the same 408 images (the 512-image
FER+ *train* manifest less the fifth ``edge-fer quantize`` holds out).  Every graph is then scored on
all of FER+ test against the float model in ONNX Runtime on this CPU.

TensorRT cannot run here, so INT8 parity is *simulated*: ORT executes the Q/DQ graph with graph
optimisation off, so each QuantizeLinear/DequantizeLinear pair runs as float rounding (TensorRT's
int32-accumulation numerics), exactly as ``edge-fer quantize --target jetson`` judges its own output.
fp16 graphs run on ORT's CPU execution provider, which computes fp16 where it has a kernel and inserts
casts elsewhere: the measurement covers fp16 storage and rounding between ops, not TensorRT's kernels.

ModelOpt is not an edge-fer dependency (its ``[onnx]`` extra pulls onnxruntime-gpu and cupy): it runs
from its own virtual environment, given by ``--modelopt-python``, as its command-line tools.  Writes
``benchmarks/results/<machine>-modelopt_eval.{md,json}``; the set-up line is in benchmarks/README.md.

    .venv/bin/python benchmarks/modelopt_eval.py --modelopt-python /tmp/mo-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.calibration_methods import DATA, EDGE_FER, MODEL, machine_name  # noqa: E402
from edge_fer.artifacts.atomic import write_json, write_text  # noqa: E402
from edge_fer.bench.measure import parity  # noqa: E402
from edge_fer.build.float16 import float16_onnx  # noqa: E402
from edge_fer.data.dataset import SkipReport, load_labelled  # noqa: E402
from edge_fer.export.onnx_io import load_onnx  # noqa: E402
from edge_fer.quantize.calibration import load_calibration  # noqa: E402
from edge_fer.quantize.run import CALIB_BATCH, RECIPE, make_batches, split_holdout  # noqa: E402
from edge_fer.quantize.tensorrt_qdq import check_tensorrt_qdq  # noqa: E402
from edge_fer.train.metrics import batched_logits  # noqa: E402

MANIFEST = ROOT / "calibration" / "ferplus-train-512.txt"
# ops whose Q/DQ placement TensorRT's guide discusses: residual Add, pooling/reductions, the CBAM/SE gates, the head
WATCHED = ("Conv", "Add", "Mul", "Sigmoid", "ReduceMean", "ReduceMax", "GlobalAveragePool", "MatMul", "Gemm",
           "Concat", "Relu", "Clip", "Div", "ReduceL2")
BASELINE = "edge-fer jetson QDQ (default: percentile)"  # what `edge-fer quantize --target jetson` writes today
MODELOPT_DISTS = ("nvidia-modelopt", "onnx", "onnxruntime", "onnx-graphsurgeon", "onnxconverter-common", "torch")


# ----------------------------------------------------------------------------- Q/DQ placement


def qdq_placement(model: onnx.ModelProto) -> dict:
    """Where a QDQ graph quantizes: pairs, which ops read int8 inputs or feed a Q, weight scheme, symmetry.

    A DequantizeLinear whose chain starts at an initializer carries a weight; any other carries an
    activation.  ``ops`` says, per watched op type, how many nodes read a dequantized activation
    (``int8_in``), a dequantized weight (``int8_weight``) or feed a QuantizeLinear (``int8_out``).
    """
    from onnx import numpy_helper

    init = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dequantize = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]

    def carries_weight(dq: onnx.NodeProto) -> bool:
        q = producer.get(dq.input[0])
        return dq.input[0] in init or (q is not None and q.op_type == "QuantizeLinear" and q.input[0] in init)

    weight_dq = {d.output[0]: d for d in dequantize if carries_weight(d)}
    act_dq = {d.output[0] for d in dequantize if d.output[0] not in weight_dq}
    q_inputs = {q.input[0] for q in quantize}
    ops: dict[str, dict[str, int]] = {}
    for node in model.graph.node:
        if node.op_type not in WATCHED:
            continue
        row = ops.setdefault(node.op_type, {"nodes": 0, "int8_in": 0, "int8_weight": 0, "int8_out": 0})
        row["nodes"] += 1
        row["int8_in"] += any(x in act_dq for x in node.input)
        row["int8_weight"] += any(x in weight_dq for x in node.input)
        row["int8_out"] += any(o in q_inputs for o in node.output)
    weighted = {x: n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm") for x in n.input[1:2]}
    per_channel = per_tensor = int8_stored = 0
    for out, dq in weight_dq.items():
        int8_stored += dq.input[0] in init
        if out not in weighted:  # a constant of Add/Mul/Div through Q/DQ: a scalar, no channel axis
            continue
        scale = numpy_helper.to_array(init[dq.input[1]]) if dq.input[1] in init else np.zeros(1)
        channels = init[weighted[out].input[1]].dims[0] if weighted[out].input[1] in init else 1
        per_channel += scale.size > 1 or channels == 1  # one output channel: per-tensor is per-channel
        per_tensor += scale.size == 1 and channels > 1
    zero_points = [numpy_helper.to_array(init[n.input[2]]) for n in (*quantize, *dequantize)
                   if len(n.input) > 2 and n.input[2] in init]
    zp_types = sorted({onnx.TensorProto.DataType.Name(init[n.input[2]].data_type) for n in (*quantize, *dequantize)
                       if len(n.input) > 2 and n.input[2] in init})
    return {"quantize_nodes": len(quantize), "dequantize_nodes": len(dequantize),
            "qdq_pairs": sum(1 for q in quantize for d in dequantize if d.input[0] == q.output[0]),
            "activation_dq": len(act_dq), "weight_dq": len(weight_dq),
            "constant_dq": sum(1 for out in weight_dq if out not in weighted),
            "weights_per_channel": per_channel, "weights_per_tensor": per_tensor,
            "weights_stored_int8": int8_stored, "weights_float_through_qdq": len(weight_dq) - int8_stored,
            "symmetric": all(not np.any(z) for z in zero_points), "zero_point_types": zp_types,
            "float_types": sorted({onnx.TensorProto.DataType.Name(t.data_type) for t in model.graph.initializer
                                   if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}),
            "edge_fer_tensorrt_rules": check_tensorrt_qdq(model)[:5], "ops": ops}


def precision_map(model: onnx.ModelProto) -> dict:
    """Which op types of a fp16 conversion compute in float32 (inputs float32 after conversion), and Casts."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)}
    types.update({t.name: t.data_type for t in graph.initializer})
    fp32, fp16 = Counter(), Counter()
    for node in graph.node:
        if node.op_type in ("Cast", "Constant", "Shape"):
            continue
        kinds = {types.get(x) for x in node.input if x}
        if onnx.TensorProto.FLOAT16 in kinds:
            fp16[node.op_type] += 1
        elif onnx.TensorProto.FLOAT in kinds:
            fp32[node.op_type] += 1
    return {"fp32_ops": dict(fp32), "fp16_ops": dict(fp16),
            "casts": sum(n.op_type == "Cast" for n in graph.node), "nodes": len(graph.node)}


def mcnemar(agrees: np.ndarray, baseline: np.ndarray) -> dict:
    """Images where only this graph / only the baseline agrees with float, and the exact two-sided McNemar p."""
    from math import comb

    mine, theirs = int((agrees & ~baseline).sum()), int((~agrees & baseline).sum())
    n = mine + theirs
    p = min(1.0, 2 * sum(comb(n, i) for i in range(min(mine, theirs) + 1)) / 2 ** n) if n else 1.0
    return {"only_this_agrees": mine, "only_default_agrees": theirs, "p": p}


def check_model(path: Path) -> str:
    """``onnx.checker`` (full check, with shape inference) on ``path``: "ok" or the first line of its error."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
        return "ok"
    except Exception as e:  # ValidationError, InferenceError
        return str(e).splitlines()[0][:200]


def activation_ranges_used(graphs: dict[str, dict], calib: np.ndarray) -> dict:
    """Each INT8 graph's activation range (127 x Q scale) over the calibration set's true max |x|, per tensor
    that every INT8 graph quantizes: 1.0 is what a max/minmax calibration should give, < 1 is clipping."""
    import onnxruntime as ort
    from onnx import numpy_helper

    scales = {}
    for name, g in graphs.items():
        if g["kind"] == "int8":
            model = onnx.load(str(g["path"]))
            init = {t.name: t for t in model.graph.initializer}
            scales[name] = {n.input[0]: 127.0 * float(numpy_helper.to_array(init[n.input[1]]).max())
                            for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in init}
    common = sorted(set.intersection(*(set(v) for v in scales.values())))
    model = onnx.load(str(graphs["float (fp32)"]["path"]))
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in common)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    true_max = np.zeros(len(common))
    for i in range(0, len(calib), CALIB_BATCH):
        outs = session.run(common, {session.get_inputs()[0].name: calib[i:i + CALIB_BATCH]})
        true_max = np.maximum(true_max, [float(np.abs(o).max()) for o in outs])
    live = true_max > 0  # a tensor that is 0 on every image (a dead ReLU channel map) has no range to compare
    out = {"tensors": int(live.sum()), "all_zero": int((~live).sum())}
    for name, used in scales.items():
        ratio = np.array([used[t] for t in common])[live] / true_max[live]
        out[name] = {"median": float(np.median(ratio)), "min": float(ratio.min()), "max": float(ratio.max())}
    return out


# ----------------------------------------------------------------------------- producing the graphs


def run(cmd: list[str], log: Path) -> None:
    """Run ``cmd`` with its output in ``log``; a failure stops the benchmark with the log's tail."""
    with log.open("w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({done.returncode}):\n{log.read_text()[-2000:]}")


def calibration_arrays(fp32: Path, work: Path) -> None:
    """The 408 images ``edge-fer quantize`` calibrates on (same split, whole batches, same preprocessing),
    as the ``.npy`` ModelOpt's quantizer reads and the ``.npz`` its AutoCast reads."""
    _proto, info = load_onnx(fp32)
    images, _desc = load_calibration(MANIFEST, 512, 0, SkipReport())
    calib, _held = split_holdout(images)
    x = np.concatenate(make_batches(calib[:len(calib) - len(calib) % CALIB_BATCH], info))
    np.save(work / "calib.npy", x)
    np.savez(work / "calib.npz", images=x)


def modelopt_input(fp32: Path, work: Path, slug: str) -> Path:
    """A private copy of the float model: ModelOpt writes its intermediate graphs beside its input."""
    folder = work / slug
    folder.mkdir(exist_ok=True)
    shutil.copyfile(fp32, folder / fp32.name)
    return folder / fp32.name


def produce(work: Path, mo_python: str) -> dict[str, dict]:
    """Every graph to score (path, kind, command), made in ``work`` unless already there."""
    fp32 = work / "float.onnx"
    if not fp32.exists():
        run([*EDGE_FER, "export", str(MODEL), "-o", str(fp32)], work / "export.log")
    npy = work / "calib.npy"
    if not npy.exists():
        calibration_arrays(fp32, work)

    def edge_fer_jetson(method: str) -> list[str]:
        return [*EDGE_FER, "quantize", str(fp32), "--calib", str(MANIFEST), "--target", "jetson", "--method", method,
                "-o"]
    # Stems carry the recipe (edge_fer.quantize.run.RECIPE): a --work folder from an older recipe keeps its graphs.

    def modelopt_int8(method: str, slug: str) -> list[str]:
        return [mo_python, "-m", "modelopt.onnx.quantization", "--onnx_path", str(modelopt_input(fp32, work, slug)),
                "--quantize_mode", "int8", "--calibration_method", method, "--calibration_data_path", str(npy),
                "--calibration_shapes", f"images:{CALIB_BATCH}x3x64x64", "--calibration_eps", "cpu",
                "--high_precision_dtype", "fp32", "--output_path"]

    recipes = {  # name: (file stem, kind, command less the output path; none: edge_fer.build.float16 in-process)
        BASELINE: (f"edge-jetson-r{RECIPE}-percentile", "int8", edge_fer_jetson("percentile")),
        "edge-fer jetson QDQ (entropy)": (f"edge-jetson-r{RECIPE}-entropy", "int8", edge_fer_jetson("entropy")),
        "edge-fer jetson QDQ (minmax)": (f"edge-jetson-r{RECIPE}-minmax", "int8", edge_fer_jetson("minmax")),
        "ModelOpt int8 (max)": ("modelopt-max", "int8", modelopt_int8("max", "modelopt-max")),
        "ModelOpt int8 (entropy)": ("modelopt-entropy", "int8", modelopt_int8("entropy", "modelopt-entropy")),
        "edge-fer float16.py": ("fp16-edge", "fp16", []),
        "ModelOpt AutoCast fp16": ("fp16-autocast", "fp16", [
            mo_python, "-m", "modelopt.onnx.autocast", "--onnx_path", str(modelopt_input(fp32, work, "fp16-autocast")),
            "--low_precision_type", "fp16", "--keep_io_types", "--calibration_data", str(work / "calib.npz"),
            "--providers", "cpu", "--output_path"]),
    }
    graphs: dict[str, dict] = {"float (fp32)": {"path": fp32, "kind": "fp32", "command": "edge-fer export"}}
    for name, (stem, kind, cmd) in recipes.items():
        out = work / f"{stem}.onnx"
        if not out.exists():
            if cmd:
                run([*cmd, str(out)], work / f"{stem}.log")
            else:
                onnx.save(float16_onnx(onnx.load(str(fp32))), str(out))
        graphs[name] = {"path": out, "kind": kind,
                        "command": " ".join(c.replace(str(work), "WORK") for c in cmd[1:]) or "edge_fer.build.float16"}
    return graphs


# ----------------------------------------------------------------------------- scoring


def score(graphs: dict[str, dict]) -> dict:
    """Logits of every graph on all of FER+ test (cached in ``work``), each compared with the float graph."""
    from edge_fer.backends.onnxruntime_backend import OrtRunner

    float_runner = OrtRunner.open(graphs["float (fp32)"]["path"], threads=2)
    info = float_runner.info
    images, labels = load_labelled(DATA / "test", info.classes, SkipReport())
    logits = {}
    for name, g in graphs.items():
        cache = g["path"].with_suffix(".logits.npy")
        if not cache.exists() or cache.stat().st_mtime < g["path"].stat().st_mtime:
            runner = OrtRunner.open(g["path"], threads=2, info=info, simulate_int8=g["kind"] == "int8")
            start = time.perf_counter()
            np.save(cache, batched_logits(runner, images, info.preprocessing))
            print(f"{name}: scored {len(images)} images in {time.perf_counter() - start:.0f} s", flush=True)
        logits[name] = np.load(cache)
    reference = logits["float (fp32)"]
    baseline = logits[BASELINE].argmax(1) == reference.argmax(1)
    spread = float(np.median(reference.max(1) - reference.min(1)))
    rows = {}
    for name, g in graphs.items():
        p = parity(reference, logits[name], labels, info.classes)
        diff = np.abs(logits[name].astype(np.float64) - reference)
        proto = onnx.load(str(g["path"]))
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        rows[name] = {"kind": g["kind"], "opset": opset, "command": g["command"],
                      "bytes": g["path"].stat().st_size, "onnx_checker": check_model(g["path"]),
                      "accuracy": p["accuracy"], "drop_pt": p["accuracy_drop_pt"], "agreement": p["top1_agreement"],
                      "mean_abs_dlogit": float(diff.mean()), "median_abs_dlogit": float(np.median(diff)),
                      "max_abs_dlogit": float(diff.max()), "mean_dlogit_over_spread": float(diff.mean() / spread),
                      "flipped_top2_gap_median": p.get("flipped_top2_gap_median"),
                      "vs_default": mcnemar(logits[name].argmax(1) == reference.argmax(1), baseline)}
        if g["kind"] == "int8":
            rows[name]["placement"] = qdq_placement(proto)
        elif g["kind"] == "fp16":
            rows[name]["precision"] = precision_map(proto)
    ranges = activation_ranges_used(graphs, np.load(graphs["float (fp32)"]["path"].with_name("calib.npy")))
    return {"n_test": len(labels), "float_logit_spread_median": spread, "rows": rows, "activation_ranges": ranges}


# ----------------------------------------------------------------------------- report


def versions(mo_python: str) -> dict[str, str]:
    import onnxruntime

    script = ("import json; from importlib.metadata import version; "
              f"print(json.dumps({{d: version(d) for d in {list(MODELOPT_DISTS)!r}}}))")
    mo = json.loads(subprocess.run([mo_python, "-c", script], capture_output=True, text=True, check=True).stdout)
    return {"edge-fer side: onnx": onnx.__version__, "edge-fer side: onnxruntime (scores every graph)":
            onnxruntime.__version__, **{f"ModelOpt venv: {k}": v for k, v in mo.items()}}


def markdown(result: dict) -> str:
    rows = result["rows"]
    spread = result["float_logit_spread_median"]
    lines = ["# ModelOpt vs edge-fer: jetson INT8 Q/DQ and fp16 conversion", "",
             f"Reference model `edge_fer/models/fernet-ferplus` (64 px), float ONNX from `edge-fer export`; INT8 "
             f"calibrated on the same 408 FER+ train images (`calibration/ferplus-train-512.txt` less the held-out "
             f"fifth); scored on all {result['n_test']} FER+ test images with ONNX Runtime on "
             f"{result['cpu']}. INT8 parity is **simulated**: ORT runs the Q/DQ graph unoptimised, so each Q/DQ pair "
             "is float rounding (TensorRT's int32-accumulation numerics), as edge-fer's own jetson check does; no "
             "TensorRT ran. fp16 graphs run on ORT's CPU execution provider. Median float logit spread (max-min): "
             f"{spread:.2f}.", "",
             "| graph | test acc | drop pt | agreement | mean abs dlogit | / spread | median | max | bytes | "
             "opset | checker | only it / only default agrees (p) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, r in rows.items():
        v = r["vs_default"]
        lines.append(f"| {name} | {r['accuracy']:.2%} | {r['drop_pt']:.2f} | {r['agreement']:.2%} | "
                     f"{r['mean_abs_dlogit']:.4f} | {r['mean_dlogit_over_spread']:.3f} | {r['median_abs_dlogit']:.4f} "
                     f"| {r['max_abs_dlogit']:.3f} | {r['bytes']} | {r['opset']} | {r['onnx_checker']} "
                     f"| {v['only_this_agrees']} / {v['only_default_agrees']} ({v['p']:.2g}) |")
    int8 = {n: r["placement"] for n, r in rows.items() if "placement" in r}
    lines += ["", "## INT8 Q/DQ placement", "",
              "Per op type: nodes reading an int8 activation / an int8 weight / feeding a QuantizeLinear, of all.", "",
              "| | " + " | ".join(int8) + " |", "|---|" + "---|" * len(int8)]
    for key in ("qdq_pairs", "activation_dq", "weight_dq", "constant_dq", "weights_per_channel", "weights_per_tensor",
                "weights_stored_int8", "weights_float_through_qdq", "symmetric", "zero_point_types"):
        lines.append(f"| {key} | " + " | ".join(str(p[key]) for p in int8.values()) + " |")
    lines.append("| edge-fer's TensorRT rule check | " + " | ".join(
        "; ".join(p["edge_fer_tensorrt_rules"]) or "passed" for p in int8.values()) + " |")
    for op in WATCHED:
        cells = []
        for p in int8.values():
            o = p["ops"].get(op)
            cells.append("" if o is None else f"{o['int8_in']} / {o['int8_weight']} / {o['int8_out']} of {o['nodes']}")
        if any(cells):
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
    ranges = result["activation_ranges"]
    lines += ["", "Activation range used (127 x Q scale) over the calibration set's max |x|, on the "
              f"{ranges['tensors']} tensors every INT8 graph quantizes and the calibration set does not leave all zero "
              f"({ranges['all_zero']} do; 1.0: the max; below: clipped): "
              + "; ".join(f"{n} median {r['median']:.2f} (min {r['min']:.2f}, max {r['max']:.2f})"
                          for n, r in ranges.items() if isinstance(r, dict)) + "."]
    fp16 = {n: r["precision"] for n, r in rows.items() if "precision" in r}
    lines += ["", "## fp16 conversion: what stays float32", ""]
    for name, p in fp16.items():
        lines.append(f"* **{name}**: {p['nodes']} nodes, {p['casts']} Casts; float32 ops {p['fp32_ops'] or 'none'}; "
                     f"fp16 ops {p['fp16_ops']}.")
    lines += ["", f"Recorded {time.strftime('%Y-%m-%d', time.gmtime())} with: "
              "`.venv/bin/python benchmarks/modelopt_eval.py --modelopt-python /tmp/mo-venv/bin/python` "
              "(set-up in benchmarks/README.md).",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), ""]
    return "\n".join(lines)


def main() -> None:
    from edge_fer import platform as host

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modelopt-python", required=True, help="python of a venv with nvidia-modelopt installed")
    parser.add_argument("--work", type=Path, help="keep the graphs and logits here (reused when present)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        graphs = produce(work, args.modelopt_python)
        result = score(graphs)
    result.update(cpu=f"{host.cpu_name()} ({machine_name()})", versions=versions(args.modelopt_python))
    stem = ROOT / "benchmarks" / "results" / f"{machine_name()}-modelopt_eval"
    write_json(stem.with_suffix(".json"), result)
    write_text(stem.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
