"""Depthwise convolutions int8 or float, per target: agreement with float chosen on FER+ val, latency side by side.

For each target, runs ``edge-fer quantize --depthwise int8`` and ``--depthwise float`` (a fresh process each, as
a user would; the target's default method, 512 seeded FER+ *train* images) and scores both in the target's
numerics (jetson: its QDQ simulated as TensorRT runs it) on all FER+ val and test images against the float
ONNX. Per target, the choice with the higher val agreement wins (a tie keeps int8, the faster one); test is
only reported. cpu and intel are then timed at batch 1, float and both INT8 artifacts interleaved in one loop
per target; jetson's simulation says nothing about TensorRT's speed, so it is not timed.
Writes ``benchmarks/results/<machine>-depthwise.{md,json,png}``.

    .venv/bin/python benchmarks/depthwise.py     # ~6 min on 2 cores; needs ../shared/data/ferplus
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
from edge_fer.backends import open_runner  # noqa: E402
from edge_fer.bench.measure import time_interleaved  # noqa: E402
from edge_fer.data.preprocessing import preprocess  # noqa: E402
from edge_fer.quantize.choices import DEFAULT_METHOD, DEPTHWISE, DEPTHWISE_DEFAULT  # noqa: E402
from edge_fer.quantize.run import RECIPE  # noqa: E402

TARGETS = ("cpu", "jetson", "intel")
TIMED = ("cpu", "intel")
ROUNDS = 300


def choose(rows: list[dict]) -> dict[str, str]:
    """Per target, the depthwise choice with the higher val agreement; int8 on a tie."""
    best: dict[str, dict] = {}
    for r in rows:  # int8 rows come first
        if r["target"] not in best or r["val"]["agreement"] > best[r["target"]]["val"]["agreement"]:
            best[r["target"]] = r
    return {t: r["depthwise"] for t, r in best.items()}


def latency(rows: list[dict], fp32: Path, face: np.ndarray) -> None:
    """Median batch-1 ms of float and both INT8 artifacts per timed target, interleaved in one loop, into ``rows``."""
    for target in TIMED:
        mine = [r for r in rows if r["target"] == target]
        runners = {"fp32": open_runner(fp32, threads=2),  # ONNX Runtime fp32, as in qat_eval
                   **{f"int8, depthwise {r['depthwise']}": open_runner(r["artifact"], threads=2) for r in mine}}
        batch = preprocess([face], runners["fp32"].info.preprocessing)
        timed = time_interleaved(runners, batch, warmup=20, iters=ROUNDS)
        for r in mine:
            r["median_ms"] = round(float(np.median(timed[f"int8, depthwise {r['depthwise']}"].times_ms)), 3)
            r["float_median_ms"] = round(float(np.median(timed["fp32"].times_ms)), 3)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt  # edge_fer.artifacts.plots selected the Agg backend

    fig, (ax_a, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(TARGETS))
    for i, choice in enumerate(DEPTHWISE):
        for split, hatch in (("val", ""), ("test", "//")):
            vals = [100 * next(r[split]["agreement"] for r in rows if r["target"] == t and r["depthwise"] == choice)
                    for t in TARGETS]
            ax_a.bar(x + (2 * i + (split == "test") - 1.5) * 0.2, vals, 0.2, hatch=hatch,
                     color=("tab:blue", "tab:orange")[i], label=f"depthwise {choice}, {split}")
    ax_a.axhline(99, color="tab:red", ls="--", lw=1, label="99% target")
    ax_a.set_xticks(x, TARGETS)
    ax_a.set_ylim(96, 100)
    ax_a.set_ylabel("top-1 agreement with float (%)")
    ax_a.legend(fontsize=7)
    for i, choice in enumerate(DEPTHWISE):
        ax_t.bar(np.arange(len(TIMED)) + (i - 0.5) * 0.4, [
            next(r["median_ms"] for r in rows if r["target"] == t and r["depthwise"] == choice) for t in TIMED],
            0.4, color=("tab:blue", "tab:orange")[i], label=f"depthwise {choice}")
    ax_t.set_xticks(np.arange(len(TIMED)), [f"{t} ({'ONNX Runtime' if t == 'cpu' else 'OpenVINO'})" for t in TIMED])
    ax_t.set_ylabel("batch-1 median ms (interleaved)")
    ax_t.legend(fontsize=8)
    fig.suptitle(f"INT8 depthwise convs int8 vs float, reference model ({host.cpu_name()})")
    fig.tight_layout()
    save_figure(fig, path)


def markdown(rows: list[dict], chosen: dict[str, str], n: dict[str, int], float_acc: dict[str, float]) -> str:
    lines = ["# INT8 depthwise convolutions: int8 or float, chosen on FER+ val", "",
             f"Machine: {host.cpu_name()} ({machine_name()}). Reference model `edge_fer/models/fernet-ferplus`, float "
             f"accuracy {float_acc['val']:.2%} on FER+ val ({n['val']} images) and {float_acc['test']:.2%} on test "
             f"({n['test']}). Each row: `edge-fer quantize --calib ../shared/data/ferplus/train --size 512 "
             "--depthwise int8|float` with the target's default method (recipe "
             f"{RECIPE}), scored in the target's numerics (jetson: QDQ simulated as TensorRT runs it; no TensorRT "
             "ran). Chosen per target: the higher val agreement, int8 on a tie. Latency: median of "
             f"{ROUNDS} interleaved batch-1 rounds (float, ONNX Runtime fp32, and both INT8 artifacts in one loop per "
             "target).", "",
             "| target | depthwise | val agreement | val drop pt | test agreement | test drop pt | "
             "test mean abs dlogit | median ms | float ms |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mark = " **(chosen on val)**" if chosen[r["target"]] == r["depthwise"] else ""
        ms = (f"{r['median_ms']:.3f} | {r['float_median_ms']:.3f}" if "median_ms" in r
              else "not timed (simulated) | ")
        lines.append(f"| {r['target']} | {r['depthwise']}{mark} | {r['val']['agreement']:.2%} | "
                     f"{r['val']['drop_pt']:.2f} | {r['test']['agreement']:.2%} | {r['test']['drop_pt']:.2f} | "
                     f"{r['test']['mean_abs_dlogit']:.3f} | {ms} |")
    shipped = ", ".join(f"{t} {DEPTHWISE_DEFAULT[t]}" for t in TARGETS)
    lines += ["", f"edge-fer's defaults (`edge_fer.quantize.choices.DEPTHWISE_DEFAULT`): {shipped}."]
    return "\n".join(lines + recorded("depthwise.py"))


def main() -> None:
    from rich.console import Console

    console = Console()
    rows, n, float_acc = sweep([({"target": t, "depthwise": c}, t, DEFAULT_METHOD[t], 512, ("--depthwise", c))
                                for t in TARGETS for c in DEPTHWISE], console,
                                timed=lambda rows, fp32, splits: latency(rows, fp32, splits["test"][0][0]))
    chosen = choose(rows)
    write_results("depthwise", {"machine": host.cpu_name(), "n": n, "float_accuracy": float_acc, "rows": rows,
                                "chosen": chosen, "defaults": DEPTHWISE_DEFAULT, "versions": versions()},
                  markdown(rows, chosen, n, float_acc), lambda png: plot(rows, png))
    if chosen != {t: DEPTHWISE_DEFAULT[t] for t in TARGETS}:
        console.print(f"[yellow]val picks {chosen}; edge-fer's defaults are {DEPTHWISE_DEFAULT}[/]")


if __name__ == "__main__":
    main()
