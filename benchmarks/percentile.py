"""Which percentile of |x| the percentile calibration keeps: top-1 agreement with float per target, chosen on FER+ val.

For each target and each percentile, runs ``edge-fer quantize --method percentile --percentile P`` (a fresh
process each, as a user would; 512 seeded FER+ *train* images; each target's ``--depthwise`` default) and scores
the artifact in the target's numerics (jetson: its QDQ simulated as TensorRT runs it; intel: NNCF's mean-quantile
estimator at that percentile) on all FER+ val and test images against the float ONNX. One percentile serves every
target: the one with the highest val agreement averaged over the targets. Test is only reported.
Writes ``benchmarks/results/<machine>-percentile.{md,json,png}``.

    .venv/bin/python benchmarks/percentile.py     # ~7 min on 2 cores; needs ../shared/data/ferplus
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from calibration_methods import machine_name, recorded, sweep, versions, write_results  # noqa: E402

from edge_fer import platform as host  # noqa: E402
from edge_fer.artifacts.plots import save_figure  # noqa: E402
from edge_fer.quantize.activation_ranges import PERCENTILE  # noqa: E402
from edge_fer.quantize.run import RECIPE  # noqa: E402

TARGETS = ("cpu", "jetson", "intel")
PERCENTILES = (99.99, 99.999, 99.9999)


def choose(rows: list[dict]) -> float:
    """The percentile with the highest val agreement averaged over :data:`TARGETS` (the lower one on a tie)."""
    mean = {p: float(np.mean([r["val"]["agreement"] for r in rows if r["percentile"] == p])) for p in PERCENTILES}
    return max(PERCENTILES, key=lambda p: (mean[p], -p))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt  # edge_fer.artifacts.plots selected the Agg backend

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, split in zip(axes, ("val", "test"), strict=True):
        for target in TARGETS:
            ax.plot([str(p) for p in PERCENTILES],
                    [100 * next(r[split]["agreement"] for r in rows if r["target"] == target and r["percentile"] == p)
                     for p in PERCENTILES], marker="o", label=target)
        ax.axhline(99, color="tab:red", ls="--", lw=1, label="99% target")
        ax.set_xlabel("percentile of |x| kept")
        ax.set_title(f"FER+ {split}")
    axes[0].set_ylabel("top-1 agreement with float (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"INT8 percentile calibration, reference model ({host.cpu_name()})")
    fig.tight_layout()
    save_figure(fig, path)


def markdown(rows: list[dict], chosen: float, n: dict[str, int], float_acc: dict[str, float]) -> str:
    lines = ["# INT8 percentile calibration: which percentile of |x|, chosen on FER+ val", "",
             f"Machine: {host.cpu_name()} ({machine_name()}). Reference model `edge_fer/models/fernet-ferplus`, float "
             f"accuracy {float_acc['val']:.2%} on FER+ val ({n['val']} images) and {float_acc['test']:.2%} on test "
             f"({n['test']}). Each row: `edge-fer quantize --calib ../shared/data/ferplus/train --size 512 --method "
             f"percentile --percentile P` (recipe {RECIPE}, each target's `--depthwise` default), scored in the "
             "target's numerics (jetson: QDQ simulated as TensorRT runs it; no TensorRT ran). Chosen: the percentile "
             f"with the highest val agreement averaged over the three targets: **{chosen}** (edge-fer's default: "
             f"{PERCENTILE}).", "",
             "| target | percentile | val agreement | val mean abs dlogit | test agreement | test drop pt | "
             "test mean abs dlogit |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mark = " **(chosen)**" if r["percentile"] == chosen else ""
        lines.append(f"| {r['target']} | {r['percentile']}{mark} | {r['val']['agreement']:.2%} | "
                     f"{r['val']['mean_abs_dlogit']:.3f} | {r['test']['agreement']:.2%} | "
                     f"{r['test']['drop_pt']:.2f} | {r['test']['mean_abs_dlogit']:.3f} |")
    return "\n".join(lines + recorded("percentile.py"))


def main() -> None:
    from rich.console import Console

    console = Console()
    rows, n, float_acc = sweep([({"target": t, "percentile": p}, t, "percentile", 512, ("--percentile", str(p)))
                                for t in TARGETS for p in PERCENTILES], console)
    chosen = choose(rows)
    write_results("percentile", {"machine": host.cpu_name(), "n": n, "float_accuracy": float_acc, "rows": rows,
                                 "chosen": chosen, "default": PERCENTILE, "versions": versions()},
                  markdown(rows, chosen, n, float_acc), lambda png: plot(rows, png))
    if chosen != PERCENTILE:
        console.print(f"[yellow]val picks {chosen}; edge-fer's default is {PERCENTILE}[/]")


if __name__ == "__main__":
    main()
