"""``edge-fer eval``: a checkpoint's accuracy on a labelled folder, as JSON and PNG."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge_fer.artifacts.atomic import write_json
from edge_fer.artifacts.checkpoint import load_checkpoint
from edge_fer.artifacts.plots import plot_confusion
from edge_fer.backends.torch_backend import TorchRunner
from edge_fer.data.dataset import SkipReport, load_labelled
from edge_fer.train.metrics import MACRO_MIN_SUPPORT, NEAR_TIE, Metrics, batched_logits, compute_metrics


def evaluate_checkpoint(checkpoint: Path, data: Path, out: Path | None, batch_size: int,
                        console: Console) -> Metrics:
    ckpt = load_checkpoint(checkpoint)
    skips = SkipReport()
    images, labels = load_labelled(data, ckpt.classes, skips)
    runner = TorchRunner.from_checkpoint(ckpt)
    logits = batched_logits(runner, images, ckpt.preprocessing, batch_size)
    metrics = compute_metrics(logits, labels, ckpt.classes)
    table = Table(title=f"{data}: {metrics.summary()} on {metrics.n} images")
    table.add_column("class")
    table.add_column("recall", justify="right")
    table.add_column("n", justify="right")
    for i, name in enumerate(ckpt.classes):
        table.add_row(name, f"{metrics.per_class_recall[name]:.2%}", str(int(metrics.confusion[i].sum())))
    console.print(table)
    margins = metrics.margins
    if margins:
        console.print(f"macro recall over classes with >= {MACRO_MIN_SUPPORT} images; median top-2 logit gap "
                      f"{margins['median_top2_gap']:.2f}, near-ties (gap < {NEAR_TIE}) {margins['near_tie_share']:.1%}")
    console.print(skips.summary())
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", {"checkpoint": str(checkpoint), "data": str(data), **metrics.to_dict(),
                                          "skipped_images": skips.skipped})
        plot_confusion(metrics.confusion, ckpt.classes, out / "confusion_matrix.png",
                       f"{data.name}: {metrics.accuracy:.1%}")
        console.print(f"wrote {out / 'metrics.json'} and {out / 'confusion_matrix.png'}")
    return metrics
