"""INT8 calibration methods on the reference model: quantization time and memory, FER+ test parity.

For each target/method pair, runs ``edge-fer quantize`` (a fresh process, as a user would) on the
shipped reference model with 512 seeded, stratified FER+ *train* images. It records the CLI's wall
time and the report's quantize time and peak RSS. It then measures FER+ test accuracy and top-1
agreement with the float model (ORT fp32) over all 2851 test images. The ONNX is exported once
with ``edge-fer export``. Writes ``benchmarks/results/<machine>-calibration.{md,json,png}``.

    .venv/bin/python benchmarks/calibration_methods.py     # ~10 min on 2 cores; needs ../shared/data/ferplus
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_fer import platform as host  # noqa: E402
from edge_fer.artifacts.atomic import write_json, write_text  # noqa: E402
from edge_fer.artifacts.plots import save_figure  # noqa: E402
from edge_fer.backends import open_runner  # noqa: E402
from edge_fer.bench.measure import parity  # noqa: E402
from edge_fer.data.dataset import SkipReport, load_labelled  # noqa: E402
from edge_fer.train.metrics import batched_logits  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "ferplus"
MODEL = ROOT / "edge_fer" / "models" / "fernet-ferplus"
RUNS = [("cpu", "minmax"), ("cpu", "entropy"), ("cpu", "percentile"), ("jetson", "minmax"), ("jetson", "entropy"),
        ("intel", "minmax"), ("intel", "percentile")]  # jetson: its QDQ ONNX, run by ORT on this CPU
EDGE_FER = [sys.executable, "-m", "edge_fer.cli"]


def machine_name() -> str:
    """Same naming as run.sh: cores and the INT8 instruction set that matters."""
    return f"{os.cpu_count()}core-{'avx512vnni' if 'avx512_vnni' in host.cpu_flags() else 'avx2'}"


def versions() -> str:
    import nncf
    import onnxruntime
    import openvino
    return f"onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, nncf {nncf.__version__}"


def quantize(onnx_path: Path, target: str, method: str, out_dir: Path, size: int = 512,
             extra: Sequence[str] = ()) -> dict:
    """Run ``edge-fer quantize`` (plus the flags ``extra``) on ``size`` seeded FER+ train images in its own process;
    its report plus the CLI's wall time."""
    tag = "".join(f"-{e.strip('-')}" for e in extra)
    out = out_dir / f"{target}-{method}-{size}{tag}.{'xml' if target == 'intel' else 'onnx'}"
    cmd = [*EDGE_FER, "quantize", str(onnx_path), "--calib", str(DATA / "train"), "--size", str(size),
           "--target", target, "--method", method, "-o", str(out), *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    report = json.loads(out.with_suffix(".json").read_text())
    return {"artifact": out, "cli_wall_s": round(time.perf_counter() - start, 1),
            "quantize_s": report["quantize_seconds"], "peak_rss_mb": report["peak_rss_mb"],
            "heldout_agreement": report["float_vs_int8_heldout"]["top1_agreement"]}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt  # edge_fer.artifacts.plots selected the Agg backend

    names = [f"{r['target']}\n{r['method']}" for r in rows]
    fig, (ax_t, ax_d, ax_a) = plt.subplots(1, 3, figsize=(15, 3.8))
    panels = [(ax_t, "cli_wall_s", 1, "edge-fer quantize wall time (s)", 60, "60 s target", "tab:blue"),
              (ax_d, "drop_pt", 1, "FER+ test accuracy drop (points)", 1, "1 pt target", "tab:orange"),
              (ax_a, "agreement", 100, "top-1 agreement with float (%)", 98.5, "98.5% target", "tab:green")]
    for ax, key, factor, label, target, target_label, color in panels:
        ax.bar(names, [factor * r[key] for r in rows], color=color)
        ax.axhline(target, color="tab:red", ls="--", lw=1, label=target_label)
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelsize=8)
        ax.legend()
    ax_a.set_ylim(85, 100)
    fig.suptitle("INT8 calibration methods, reference model, 512 FER+ train images")
    fig.tight_layout()
    save_figure(fig, path)


def markdown(rows: list[dict], n: int, float_acc: float) -> str:
    lines = ["# INT8 calibration methods: time, memory, FER+ test parity", "",
             f"Reference model (`edge_fer/models/fernet-ferplus`, float {float_acc:.2%} on FER+ test, {n} images), "
             "512 seeded, stratified FER+ train images (408 calibrate, 102 held out). Times are one run each "
             "on a noisy 2-core VM.", "",
             "| target | method | CLI wall s | quantize s | peak RSS MB | test accuracy | drop pt | agreement | "
             "mean abs dlogit |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['method']} | {r['cli_wall_s']:.1f} | {r['quantize_s']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['accuracy']:.2%} | {r['drop_pt']:.2f} | {r['agreement']:.2%} | "
                     f"{r['mean_abs_dlogit']:.3f} |")
    return "\n".join(lines + recorded("calibration_methods.py"))


def score(artifact: Path, splits: dict, reference: dict, classes: list[str], preprocessing) -> dict:
    """Accuracy, drop and agreement with float (``reference`` logits) of ``artifact`` on every split, run in the
    numerics its metadata names (a jetson QDQ simulated as TensorRT runs it)."""
    runner = open_runner(artifact, threads=2)
    out = {}
    for split, (images, labels) in splits.items():
        p = parity(reference[split], batched_logits(runner, images, preprocessing), labels, classes)
        out[split] = {"accuracy": p["accuracy"], "drop_pt": p["accuracy_drop_pt"], "agreement": p["top1_agreement"],
                      "mean_abs_dlogit": p["mean_abs_logit_diff"]}
    return out


def sweep(points: Sequence[tuple[dict, str, str, int, Sequence[str]]], console,
          timed: Callable[[list[dict], Path, dict], None] | None = None
          ) -> tuple[list[dict], dict[str, int], dict[str, float]]:
    """Each ``(label, target, method, size, extra)`` point: :func:`quantize` then :func:`score` on FER+ val and
    test against the exported float model, all in one temporary folder; ``timed(rows, fp32, splits)`` runs while
    the artifacts still exist. Returns the rows (``label`` + quantize time + scores) and, per split, the number of
    images and the float model's accuracy: the header figures of every val/test sweep."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32, info, splits, reference = float_splits(work)
        for label, target, method, size, extra in points:
            q = quantize(fp32, target, method, work, size, extra)
            rows.append({**label, "artifact": q["artifact"], "quantize_s": q["quantize_s"],
                         **score(q["artifact"], splits, reference, info.classes, info.preprocessing)})
            console.print(" ".join(str(v) for v in label.values()) + ": " +
                          " ".join(f"{k} {rows[-1][k]['agreement']:.2%}" for k in splits))
        if timed is not None:
            timed(rows, fp32, splits)
    for r in rows:
        r.pop("artifact")  # gone with the folder
    n = {k: len(v[1]) for k, v in splits.items()}
    return rows, n, {k: float((reference[k].argmax(1) == splits[k][1]).mean()) for k in splits}


def write_results(name: str, payload: dict, markdown_text: str, plot_rows: Callable[[Path], None]) -> None:
    """``benchmarks/results/<machine>-<name>.{json,md,png}``, each written atomically."""
    stem = ROOT / "benchmarks" / "results" / f"{machine_name()}-{name}"
    write_json(stem.with_suffix(".json"), payload)
    write_text(stem.with_suffix(".md"), markdown_text)
    plot_rows(stem.with_suffix(".png"))


def recorded(script: str) -> list[str]:
    """The closing lines of every results page: when, the command that wrote it, the versions."""
    return ["", f"Recorded {time.strftime('%Y-%m-%d', time.gmtime())} with: `.venv/bin/python benchmarks/{script}`",
            f"Versions: {versions()}", ""]


def float_reference(work: Path):
    """The shipped model exported into ``work`` with ``edge-fer export`` (as a user would), its ORT runner,
    FER+ test (images, labels) and the float logits on it: what every benchmark here compares against."""
    fp32 = work / "fernet.onnx"
    subprocess.run([*EDGE_FER, "export", str(MODEL), "-o", str(fp32)], check=True, capture_output=True)
    runner = open_runner(fp32, threads=2)
    images, labels = load_labelled(DATA / "test", runner.info.classes, SkipReport())
    return fp32, runner, images, labels, batched_logits(runner, images, runner.info.preprocessing)


def float_splits(work: Path):
    """:func:`float_reference` with FER+ val beside test: the exported ONNX, its ModelInfo, ``{split: (images,
    labels)}`` and the float logits per split (val chooses, test reports)."""
    fp32, runner, test_images, test_labels, test_ref = float_reference(work)
    info = runner.info
    val = load_labelled(DATA / "val", info.classes, SkipReport())
    splits = {"val": val, "test": (test_images, test_labels)}
    return fp32, info, splits, {"val": batched_logits(runner, val[0], info.preprocessing), "test": test_ref}


def main() -> None:
    from rich.console import Console

    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32, reference_runner, images, labels, reference = float_reference(work)
        preprocessing = reference_runner.info.preprocessing
        float_acc = float((reference.argmax(1) == labels).mean())
        for target, method in RUNS:
            row = {"target": target, "method": method, **quantize(fp32, target, method, work)}
            row.update(score(row.pop("artifact"), {"test": (images, labels)}, {"test": reference},
                             reference_runner.info.classes, preprocessing)["test"])
            rows.append(row)
            console.print(row)  # progress: one row per (target, method) as it finishes
    write_results("calibration", {"n_test": len(labels), "float_accuracy": float_acc, "rows": rows,
                                  "versions": versions()},
                  markdown(rows, len(labels), float_acc), lambda path: plot(rows, path))


if __name__ == "__main__":
    main()
