"""``edge-fer predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_fer.cli.app import app, checkpoint_path, console, user_errors


@app.command()
@user_errors
def predict(
    inputs: Annotated[list[Path] | None, typer.Argument(
        metavar="INPUT", help="Images, folders (searched recursively for images) or videos (.mp4/.avi/.mkv/.mov)",
    )] = None,
    engine: Annotated[Path | None, typer.Option(
        help="Checkpoint, .onnx, OpenVINO .xml or TensorRT .engine (default: the shipped reference model)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write annotated images/videos and "
                                              "predictions.json here")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the predictions JSON to stdout")] = False,
    min_face: Annotated[int, typer.Option(min=1, help="Smallest face to detect, in pixels")] = 40,
    no_detect: Annotated[bool, typer.Option(
        "--no-detect", help="No face detection: each image is one face crop")] = False,
    camera: Annotated[int | None, typer.Option(
        min=0, help="Also read camera N (cv2.VideoCapture index); Ctrl-C stops")] = None,
    yunet: Annotated[Path | None, typer.Option(
        help="YuNet face detector .onnx (default: OpenCV's Haar cascade)")] = None,
) -> None:
    """Expressions on real photos and video: detect faces, classify them, draw and save the results."""
    from edge_fer.backends import open_runner
    from edge_fer.data.dataset import SkipReport
    from edge_fer.predict.faces import FaceDetector
    from edge_fer.predict.run import collect_sources

    skips = SkipReport()
    sources = collect_sources(inputs or [], camera, skips)
    detector = FaceDetector(min_face=min_face, detect=not no_detect, yunet=yunet)
    path = checkpoint_path(engine)
    runner = open_runner(path)
    _print_report(_run(sources, runner, detector, path, out, skips), out, json_out)


def _run(sources, runner, detector, path: Path, out: Path | None, skips):
    """The predict stage under a transient progress bar."""
    from rich.progress import Progress

    from edge_fer.predict.run import PredictOptions
    from edge_fer.predict.run import predict as run_predict

    with Progress(console=console, transient=True) as progress:
        return run_predict(sources, runner, detector, PredictOptions(str(path), out), progress=progress,
                           skips=skips)


def _print_report(report, out: Path | None, json_out: bool) -> None:
    """The per-file summary, where the outputs went, and the JSON on stdout when asked."""
    import json

    from edge_fer.predict.run import summary_lines

    for line in summary_lines(report):
        console.print(line, highlight=False, soft_wrap=True)
    if out is not None:
        console.print(f"wrote {out}/ (annotated images/videos, predictions.json)", highlight=False)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
