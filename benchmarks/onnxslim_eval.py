"""Does onnxslim earn a place in ``edge-fer export``?  Graph size, ORT latency and logits, with and without.

Exports the reference model, simplifies it with onnxslim, and compares the two graphs in three ways:
node counts as written, node counts after ONNX Runtime's own load-time optimisation (ORT_ENABLE_ALL,
which is what the runtime executes), and ORT fp32 latency at batch 1, both sessions timed in one
interleaved run. It also records max |dlogit| between the two on real faces. Writes
``benchmarks/results/<machine>-onnxslim.{md,json}``.

    .venv/bin/pip install onnxslim && .venv/bin/python benchmarks/onnxslim_eval.py   # ~2 min
"""

from __future__ import annotations

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

from benchmarks.calibration_methods import EDGE_FER, MODEL, machine_name  # noqa: E402
from edge_fer.artifacts.atomic import write_json, write_text  # noqa: E402
from edge_fer.backends import open_runner  # noqa: E402
from edge_fer.bench.measure import time_interleaved  # noqa: E402
from edge_fer.data.faces import embedded_faces  # noqa: E402
from edge_fer.data.preprocessing import preprocess  # noqa: E402


def ort_optimized_ops(path: Path, folder: Path) -> Counter:
    """Op counts of the graph ONNX Runtime actually runs (its ORT_ENABLE_ALL result, saved to disk)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(folder / f"{path.stem}.ort-opt.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)


def main() -> None:
    import onnxslim

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plain, slim = work / "plain.onnx", work / "slim.onnx"
        subprocess.run([*EDGE_FER, "export", str(MODEL), "-o", str(plain)], check=True, capture_output=True)
        start = time.perf_counter()
        slimmed = onnxslim.slim(onnx.load(str(plain)))
        slim_s = time.perf_counter() - start
        onnx.save(slimmed, str(slim))
        written = {p.stem: Counter(n.op_type for n in onnx.load(str(p)).graph.node) for p in (plain, slim)}
        executed = {p.stem: ort_optimized_ops(p, work) for p in (plain, slim)}
        runners = {p.stem: open_runner(p, threads=2) for p in (plain, slim)}
        faces = preprocess(embedded_faces()[:32], runners["plain"].info.preprocessing)
        dlogit = float(np.abs(runners["plain"](faces) - runners["slim"](faces)).max())
        latency = {k: v.summary() for k, v in time_interleaved(runners, faces[:1], warmup=20, iters=300).items()}
        sizes = {p.stem: p.stat().st_size for p in (plain, slim)}
    result = {"onnxslim": onnxslim.__version__, "slim_seconds": round(slim_s, 2), "sizes_bytes": sizes,
              "nodes_written": {k: sum(v.values()) for k, v in written.items()},
              "nodes_executed_by_ort": {k: sum(v.values()) for k, v in executed.items()},
              "ops_written": {k: dict(v) for k, v in written.items()},
              "ops_executed_by_ort": {k: dict(v) for k, v in executed.items()},
              "max_abs_dlogit": dlogit, "ort_b1_median_ms": {k: v["median_ms"] for k, v in latency.items()}}
    stem = ROOT / "benchmarks" / "results" / f"{machine_name()}-onnxslim"
    write_json(stem.with_suffix(".json"), result)
    ms = result["ort_b1_median_ms"]
    lines = [f"# onnxslim {onnxslim.__version__} on the reference model", "",
             "| graph | bytes | nodes written | nodes ORT executes | ORT fp32 b1 median ms |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {k} | {sizes[k]} | {result['nodes_written'][k]} | {result['nodes_executed_by_ort'][k]} | "
              f"{ms[k]:.2f} |" for k in ("plain", "slim")]
    lines += ["", f"max |dlogit| plain vs slim on 32 faces: {dlogit:.2e}; onnxslim took {slim_s:.1f} s.",
              f"Ops written: plain {dict(written['plain'])}; slim {dict(written['slim'])}.",
              f"Ops ORT executes: plain {dict(executed['plain'])}; slim {dict(executed['slim'])}.", "",
              f"Recorded {time.strftime('%Y-%m-%d', time.gmtime())} with: "
              "`.venv/bin/python benchmarks/onnxslim_eval.py`", ""]
    write_text(stem.with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
