"""PTQ vs QAT for every target on the reference model: FER+ test and embedded-face parity, latency side by side.

For each target, runs ``edge-fer quantize`` twice in its own process, as a user would: PTQ, then
``--qat`` (the same PTQ, then quantization-aware fine-tuning on FER+ train, its epoch picked on FER+ val;
an unreachable ``--min-agreement 100`` makes QAT run on every target). Both use the committed
512-image calibration manifest. It then scores float, PTQ and QAT on all FER+ test images and on the
embedded LFW faces, in each target's runtime on this CPU (jetson: its QDQ ONNX, Q/DQ simulated as float
ops by ONNX Runtime). Finally it times float, PTQ and QAT interleaved at batch 1 in one loop.
Writes ``benchmarks/results/<machine>-qat.{md,json,png}``.

    .venv/bin/python benchmarks/qat_eval.py [--targets cpu,jetson,intel] [--qat-images 8000] [--qat-epochs 2]
        [--name qat]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from calibration_methods import DATA, EDGE_FER, float_reference, machine_name, versions  # noqa: E402
from rich.console import Console  # noqa: E402

from edge_fer import platform as host  # noqa: E402
from edge_fer.artifacts.atomic import write_json, write_text  # noqa: E402
from edge_fer.artifacts.plots import save_figure  # noqa: E402
from edge_fer.backends import open_runner  # noqa: E402
from edge_fer.bench.measure import parity, time_interleaved  # noqa: E402
from edge_fer.data.faces import embedded_faces  # noqa: E402
from edge_fer.data.preprocessing import preprocess  # noqa: E402
from edge_fer.train.metrics import NEAR_TIE, batched_logits, top2_gap  # noqa: E402

CALIB = ROOT / "calibration" / "ferplus-train-512.txt"


def quantize(onnx_path: Path, target: str, out: Path, qat: list[str]) -> tuple[dict, float]:
    cmd = [*EDGE_FER, "quantize", str(onnx_path), "--calib", str(CALIB), "--target", target, "-o", str(out), *qat]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.with_suffix(".json").read_text()), round(time.perf_counter() - start, 1)


def score(reference, logits, labels, classes) -> dict:
    p = parity(reference, logits, labels, classes)
    out = {"agreement": p["top1_agreement"], "mean_abs_dlogit": p["mean_abs_logit_diff"]}
    if labels is not None:
        out.update(accuracy=p["accuracy"], drop_pt=p["accuracy_drop_pt"])
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt  # edge_fer.plots selected the Agg backend

    fig, (ax_a, ax_d) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = [r["target"] for r in rows]
    x = range(len(rows))
    for offset, kind, color in ((-0.2, "ptq", "tab:blue"), (0.2, "qat", "tab:green")):
        ax_a.bar([i + offset for i in x], [100 * r[kind]["test"]["agreement"] for r in rows], 0.4, label=kind,
                 color=color)
        ax_d.bar([i + offset for i in x], [r[kind]["test"]["drop_pt"] for r in rows], 0.4, label=kind, color=color)
    ax_a.axhline(99, color="tab:red", ls="--", lw=1, label="99% target")
    ax_d.axhline(0.3, color="tab:red", ls="--", lw=1, label="0.3 pt target")
    for ax, label in ((ax_a, "top-1 agreement with float, FER+ test (%)"), (ax_d, "accuracy drop, FER+ test (pt)")):
        ax.set_xticks(list(x), names)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    ax_a.set_ylim(90, 100)
    fig.suptitle(f"PTQ vs QAT per target, reference model ({host.cpu_name()})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def markdown(rows: list[dict], meta: dict) -> str:
    lines = ["# PTQ vs QAT per target: FER+ test, embedded faces, latency", "",
             f"Machine: {meta['cpu']}. Reference model float accuracy {meta['float_accuracy']:.2%} on FER+ test "
             f"({meta['n_test']} images; {meta['near_tie_share']:.1%} of them float near-ties, top-2 gap < "
             f"{NEAR_TIE}). QAT: {meta['qat_args']}. Latency: median of {meta['iters']} interleaved batch-1 rounds "
             "per target (float, PTQ, QAT in one loop).", "",
             "| target | path | test acc | drop pt | test agreement | faces agreement | mean abs dlogit | "
             "median ms | quantize wall s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        for kind in ("ptq", "qat"):
            k = r[kind]
            lines.append(f"| {r['target']} | {kind} | {k['test']['accuracy']:.2%} | {k['test']['drop_pt']:.2f} | "
                         f"{k['test']['agreement']:.2%} | {k['faces']['agreement']:.2%} | "
                         f"{k['test']['mean_abs_dlogit']:.3f} | {k['median_ms']:.3f} | {k['wall_s']:.0f} |")
        lines.append(f"| {r['target']} | float | | | | | | {r['float_median_ms']:.3f} | |")
    lines += ["", "QAT runtime vs its PyTorch simulation (top-1 agreement on the parity images): " + ", ".join(
        f"{r['target']} {r['qat']['runtime_vs_simulation']['top1_agreement']:.2%}" for r in rows),
        "", "QAT epoch kept (epoch 0 = PTQ's weights), picked on FER+ val agreement: " + ", ".join(
        f"{r['target']} {r['qat']['report']['qat']['kept_epoch']} (val {r['qat']['report']['ptq']['agreement']:.2%}"
        f" -> {r['qat']['report']['qat']['val']['agreement']:.2%})" for r in rows),
        "", f"Recorded {time.strftime('%Y-%m-%d', time.gmtime())} with: `.venv/bin/python benchmarks/qat_eval.py "
        f"{meta['argv']}`", f"Versions: {versions()}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="cpu,jetson,intel")
    parser.add_argument("--qat-images", type=int, default=8000)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--name", default="qat", help="results/<machine>-NAME.{md,json,png}: keeps another recording")
    args = parser.parse_args()
    console = Console()
    # An unreachable budget makes QAT run on every target, and --val makes FER+ val pick its epoch (the
    # held-out fifth of 512 calibration images is about 100 images: one flip is a whole percent there).
    qat_args = ["--qat", str(DATA / "train"), "--qat-images", str(args.qat_images), "--qat-epochs",
                str(args.qat_epochs), "--min-agreement", "100", "--val", str(DATA / "val")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32, reference_runner, images, labels, reference = float_reference(work)
        info = reference_runner.info
        faces = embedded_faces()
        reference_faces = batched_logits(reference_runner, faces, info.preprocessing)
        batch = preprocess(images[:1], info.preprocessing)
        for target in args.targets.split(","):
            row: dict = {"target": target}
            runners = {"float": reference_runner}
            for kind, extra in (("ptq", []), ("qat", qat_args)):
                out = work / f"{target}-{kind}.{'xml' if target == 'intel' else 'onnx'}"
                report, wall = quantize(fp32, target, out, extra)
                runners[kind] = open_runner(out, threads=2)
                row[kind] = {"wall_s": wall,
                             "test": score(reference, batched_logits(runners[kind], images, info.preprocessing),
                                           labels, info.classes),
                             "faces": score(reference_faces, batched_logits(runners[kind], faces,
                                                                             info.preprocessing), None, info.classes)}
                if kind == "qat":
                    row["qat"]["runtime_vs_simulation"] = report["qat"]["qat"]["runtime_vs_simulation"]
                    row["qat"]["report"] = report["qat"]
            lat = time_interleaved(runners, batch, 20, args.iters)
            row["float_median_ms"] = lat["float"].summary()["median_ms"]
            for kind in ("ptq", "qat"):
                row[kind]["median_ms"] = lat[kind].summary()["median_ms"]
            rows.append(row)
            console.print_json(json.dumps({k: v for k, v in row.items() if k != "qat"}))
    float_acc = float((reference.argmax(1) == labels).mean())
    shown = " ".join(qat_args[2:]).replace(str(DATA), "../shared/data/ferplus")  # no machine paths in results
    meta = {"cpu": host.cpu_name(), "n_test": len(labels), "float_accuracy": float_acc,
            "near_tie_share": float((top2_gap(reference) < NEAR_TIE).mean()), "qat_args": shown + " on FER+ train",
            "iters": args.iters, "argv": " ".join(sys.argv[1:])}
    stem = ROOT / "benchmarks" / "results" / f"{machine_name()}-{args.name}"
    write_json(stem.with_suffix(".json"), {**meta, "rows": rows, "versions": versions()})
    write_text(stem.with_suffix(".md"), markdown(rows, meta))
    plot(rows, stem.with_suffix(".png"))


if __name__ == "__main__":
    main()
