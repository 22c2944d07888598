"""``edge-fer bench --img-size 64,96,112,224``: one checkpoint at several input sizes, and the frontier.

A user with a latency budget asks which input size to ship.  Global average pooling
lets the same weights run at any size, so each size is benched as that checkpoint
*declared* at the size (same weights, preprocessing and export at the new size; no
retraining, no BatchNorm recalibration): what a user would get by exporting it so.
Accuracy away from the training size falls, and the frontier shows by how much.

Each size gets a full bench (its own ``OUT/<size>px/`` report, cache entries and gate);
``OUT/frontier.{json,md,png}`` put accuracy against median batch-1 latency, one point
per backend x precision x size, with the Pareto-optimal points marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge_fer.artifacts.atomic import write_json, write_text
from edge_fer.artifacts.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, sha256_file, weights_path
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.bench.run import run_bench
from edge_fer.model.fernet import FERNet

if TYPE_CHECKING:
    from rich.console import Console

    from edge_fer.bench.options import BenchOptions
    from edge_fer.bench.remote import Remote

FRONTIER_FILES = ("frontier.json", "frontier.md", "frontier.png")


def parse_sizes(text: str) -> list[int]:
    """``64,96,112`` -> [64, 96, 112] (each 32..1024, no repeats)."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise EdgeFerError(f"--img-size {text!r}: expected comma-separated integers, e.g. 64,96,112,224") from None
    if not sizes or any(not 32 <= s <= 1024 for s in sizes) or len(set(sizes)) != len(sizes):
        raise EdgeFerError(f"--img-size {text!r}: give distinct sizes between 32 and 1024, e.g. 64,96,112,224")
    return sizes


def at_size(ckpt: Checkpoint, size: int, folder: Path) -> Path:
    """``ckpt`` declared at input ``size`` (same weights), written once into ``folder``; returns its weights path."""
    weights = folder / "model.safetensors"
    if weights.is_file() and (folder / "model.json").is_file():
        return weights
    model = FERNet(replace(ckpt.config, img_size=size))
    model.load_state_dict(ckpt.model.state_dict())
    extra = {k: v for k, v in ckpt.extra.items() if k != "metrics"}  # metrics were measured at the trained size
    extra["resized_from"] = {"img_size": ckpt.config.img_size, "note": "same weights, no retraining"}
    return save_checkpoint(Checkpoint(model, ckpt.classes, ckpt.preprocessing.with_size(size), extra), folder)


def frontier_points(per_size: dict[int, dict]) -> list[dict]:
    """One point per (row, size): accuracy (or agreement without labels) and median latency at the first batch."""
    points = []
    for size, results in per_size.items():
        for name, row in results["rows"].items():
            points.append({"row": name, "img_size": size, "accuracy": row.get("accuracy"),
                           "top1_agreement": row["top1_agreement"],
                           "median_ms": row["latency"][0]["median_ms"], "batch": row["latency"][0]["batch"]})
    score = "accuracy" if all(p["accuracy"] is not None for p in points) else "top1_agreement"
    for p in points:  # Pareto-optimal: no other point is both faster and at least as accurate
        p["pareto"] = not any(q is not p and q["median_ms"] <= p["median_ms"] and q[score] >= p[score]
                              and (q["median_ms"] < p["median_ms"] or q[score] > p[score]) for q in points)
    return points


def frontier_markdown(points: Sequence[dict], data: str, machine: str) -> str:
    score = "accuracy" if all(p["accuracy"] is not None for p in points) else "top1_agreement"
    lines = [f"# Accuracy vs latency by input size ({data})", "", f"Machine: {machine}. Latency: median, batch "
             f"{points[0]['batch']}, measured per size in one bench run each (rows within a size interleaved).", "",
             f"| size | row | {score.replace('_', ' ')} | median ms | Pareto |", "|---:|---|---:|---:|:-:|"]
    for p in sorted(points, key=lambda p: (p["img_size"], p["median_ms"])):
        lines.append(f"| {p['img_size']} | {p['row']} | {p[score]:.2%} | {p['median_ms']:.3f} | "
                     f"{'yes' if p['pareto'] else ''} |")
    return "\n".join(lines) + "\n"


def plot_frontier(points: Sequence[dict], path: Path, title: str) -> None:
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    from edge_fer.artifacts.plots import plt, save_figure

    score = "accuracy" if all(p["accuracy"] is not None for p in points) else "top1_agreement"
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for row in dict.fromkeys(p["row"] for p in points):
        mine = sorted((p for p in points if p["row"] == row), key=lambda p: p["img_size"])
        ax.plot([p["median_ms"] for p in mine], [100 * p[score] for p in mine], marker="o", ms=4, label=row)
        for p in mine:
            ax.annotate(f"{p['img_size']}", (p["median_ms"], 100 * p[score]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    best = sorted((p for p in points if p["pareto"]), key=lambda p: p["median_ms"])
    ax.plot([p["median_ms"] for p in best], [100 * p[score] for p in best], ls=":", color="black", lw=1,
            label="Pareto frontier")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"median latency, batch {points[0]['batch']} (ms, log scale)")
    ax.set_ylabel(f"{score.replace('_', ' ')} (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def run_sizes(checkpoint: Path, opts: BenchOptions, sizes: str, console: Console, remote: Remote | None = None
              ) -> dict:
    """A bench per size in ``sizes`` (``64,96,...``) under ``opts.out/<size>px/``, then the frontier files."""
    if remote is not None:
        raise EdgeFerError("--img-size runs here only; bench each size on --host separately")
    if opts.int8:  # an INT8 file has one input size and one source checkpoint: not the resized ones
        raise EdgeFerError("--int8 benches a file at its own input size; drop --img-size to compare it with PTQ")
    wanted = parse_sizes(sizes)
    checkpoint = weights_path(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    per_size: dict[int, dict] = {}
    for size in wanted:
        folder = opts.cache / "sizes" / f"{sha256_file(checkpoint)[:16]}-{size}px"
        path = checkpoint if size == ckpt.config.img_size else at_size(ckpt, size, folder)
        per_size[size] = run_bench(path, replace(opts, out=opts.out / f"{size}px"), console)
    points = frontier_points(per_size)
    first = per_size[wanted[0]]
    machine = first["machine"].get("cpu", first["machine"]["platform"])
    results = {"checkpoint": str(checkpoint), "trained_img_size": ckpt.config.img_size, "sizes": wanted,
               "data": first["data"], "machine": first["machine"], "points": points,
               "passed": all(r["passed"] for r in per_size.values()),
               "per_size": {str(s): str(opts.out / f"{s}px" / "results.json") for s in wanted}}
    write_json(opts.out / "frontier.json", results)
    write_text(opts.out / "frontier.md", frontier_markdown(points, first["data"], machine))
    plot_frontier(points, opts.out / "frontier.png",
                  f"{checkpoint.parent.name}: accuracy vs latency by input size ({first['data']})")
    return results
