"""How many calibration images INT8 needs: top-1 agreement with float per target, chosen on FER+ val.

For each target (its default method; cpu also with percentile) and each calibration size, runs
``edge-fer quantize`` (a fresh process, as a user would) on that many seeded, stratified FER+ *train*
images and scores the artifact in the target's numerics (jetson: its QDQ simulated as TensorRT runs
it) on all FER+ val and test images against the float ONNX. The size and method are chosen on val;
test is only reported. Writes ``benchmarks/results/<machine>-calibration_size.{md,json,png}``.

    .venv/bin/python benchmarks/calibration_size.py     # ~20 min on 2 cores; needs ../shared/data/ferplus
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from calibration_methods import recorded, sweep, versions, write_results  # noqa: E402

from edge_fer.artifacts.plots import save_figure  # noqa: E402

SIZES = (512, 1024, 2048)
MIN_GAIN = 0.0025  # 7 of FER+ val's 2876 images
RUNS = (("cpu", "entropy"), ("cpu", "percentile"), ("jetson", "percentile"), ("intel", "percentile"))


def choose(rows: list[dict]) -> dict[str, dict]:
    """Per target, the best val agreement, where a larger calibration set must gain more than
    :data:`MIN_GAIN` over the smaller one it would replace (it costs quantize time; smaller gains are a
    few images); at one size, percentile first (every target's default)."""
    best: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: (r["size"], r["method"] != "percentile")):
        cur = best.get(r["target"])
        need = MIN_GAIN if cur is not None and r["size"] > cur["size"] else 0.0
        if cur is None or r["val"]["agreement"] > cur["val"]["agreement"] + need:
            best[r["target"]] = r
    return best


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt  # edge_fer.artifacts.plots selected the Agg backend

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, split in zip(axes, ("val", "test"), strict=True):
        for target, method in RUNS:
            pts = sorted((r["size"], 100 * r[split]["agreement"]) for r in rows
                         if r["target"] == target and r["method"] == method)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{target} {method}")
        ax.axhline(99, color="tab:red", ls="--", lw=1, label="99% target")
        ax.set_xscale("log", base=2)
        ax.set_xticks(SIZES, [str(n) for n in SIZES])
        ax.set_xlabel("calibration images (FER+ train)")
        ax.set_title(f"FER+ {split}")
    axes[0].set_ylabel("top-1 agreement with float (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle("INT8 agreement with float vs calibration set size, reference model")
    fig.tight_layout()
    save_figure(fig, path)


def markdown(rows: list[dict], chosen: dict[str, dict], n: dict[str, int], float_acc: dict[str, float]) -> str:
    lines = ["# INT8 calibration set size: agreement with float, chosen on FER+ val", "",
             f"Reference model `edge_fer/models/fernet-ferplus`, float accuracy {float_acc['val']:.2%} on FER+ val "
             f"({n['val']} images) and {float_acc['test']:.2%} on test ({n['test']}). Each row: `edge-fer quantize "
             "--calib ../shared/data/ferplus/train --size N` (seeded, stratified; a fifth held out by quantize "
             "itself), scored in the target's numerics (jetson: QDQ simulated as TensorRT runs it). Chosen per "
             f"target: the best val agreement, a larger set needing a gain above {MIN_GAIN:.2%} of val.", "",
             "| target | method | images | quantize s | val agreement | test agreement | test drop pt | "
             "test mean abs dlogit |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mark = " **(chosen on val)**" if chosen[r["target"]] is r else ""
        lines.append(f"| {r['target']} | {r['method']}{mark} | {r['size']} | {r['quantize_s']:.0f} | "
                     f"{r['val']['agreement']:.2%} | {r['test']['agreement']:.2%} | {r['test']['drop_pt']:.2f} | "
                     f"{r['test']['mean_abs_dlogit']:.3f} |")
    return "\n".join(lines + recorded("calibration_size.py"))


def main() -> None:
    from rich.console import Console

    rows, n, float_acc = sweep([({"target": t, "method": m, "size": n}, t, m, n, ())
                                for t, m in RUNS for n in SIZES], Console())
    chosen = choose(rows)
    write_results("calibration_size", {"n": n, "float_accuracy": float_acc, "rows": rows, "versions": versions(),
                                       "chosen": {t: {"method": r["method"], "size": r["size"]}
                                                  for t, r in chosen.items()}},
                  markdown(rows, chosen, n, float_acc), lambda png: plot(rows, png))


if __name__ == "__main__":
    main()
