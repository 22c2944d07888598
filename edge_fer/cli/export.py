"""``edge-fer export`` and ``edge-fer info``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_fer.cli.app import app, checkpoint_path, console, finite, user_errors


@app.command()
@user_errors
def export(
    checkpoint: Annotated[Path | None, typer.Argument(help="Checkpoint (default: the shipped reference model)")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="ONNX file to write")] = Path("model.onnx"),
    opset: Annotated[int, typer.Option(min=17, help="ONNX opset (>= 17)")] = 17,
    dynamic_batch: Annotated[bool, typer.Option(help="Dynamic batch axis (static: batch 1)")] = True,
    img_size: Annotated[int | None, typer.Option(
        min=32, max=1024, help="Input size (default: the checkpoint's)")] = None,
    calib: Annotated[Path | None, typer.Option(help="Face images to verify on (default: embedded LFW faces)")] = None,
    tolerance: Annotated[float, typer.Option(
        callback=finite, min=0.0, help="Max |logit difference| allowed vs PyTorch")] = 1e-3,
) -> None:
    """Export to ONNX and verify it against PyTorch on real faces (fails on mismatch)."""
    from edge_fer.artifacts.checkpoint import load_checkpoint
    from edge_fer.export.onnx_export import ExportOptions, export_checkpoint, verification_faces

    ckpt = load_checkpoint(checkpoint_path(checkpoint))
    faces = verification_faces(calib)
    cmp = export_checkpoint(ckpt, output, faces, ExportOptions(opset, dynamic_batch, img_size, tolerance))
    console.print(f"wrote {output} (opset {opset}); verified vs PyTorch on {cmp}")


@app.command()
@user_errors
def info(
    checkpoint: Annotated[Path | None, typer.Argument(help="Checkpoint (default: the shipped reference model)")] = None,
) -> None:
    """Which model is in use, and its model-card summary (classes, accuracy, training)."""
    from edge_fer.artifacts.checkpoint import describe, load_checkpoint

    path = checkpoint_path(checkpoint)
    for line in describe(path, load_checkpoint(path)):
        console.print(line)
