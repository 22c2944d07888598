"""``edge-fer quantize`` and ``edge-fer calib make``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_fer.cli.app import app, console, finite, user_errors

calib_app = typer.Typer(help="Calibration image sets for INT8 quantization.", no_args_is_help=True)
app.add_typer(calib_app, name="calib")


@calib_app.command("make")
@user_errors
def calib_make(
    data: Annotated[Path, typer.Option(help="Images: DATA/<class>/*.png (sampled per class) or a flat folder")],
    size: Annotated[int, typer.Option(min=1, help="Images to sample (300-500+ recommended)")] = 512,
    seed: Annotated[int, typer.Option(help="Sampling seed")] = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Manifest to write (default: "
                                                "calibration/PARENT-FOLDER-SIZE.txt, e.g. ferplus-train-512.txt)")
                      ] = None,
) -> None:
    """Sample a stratified, seeded calibration set and pin it with sha256 hashes in a manifest."""
    from edge_fer.data.dataset import SkipReport
    from edge_fer.quantize.calibration import default_manifest_path, make_manifest, write_manifest

    output = output or default_manifest_path(data, size)
    skips = SkipReport()
    with console.status(f"hashing a {size}-image sample of {data}"):
        entries = make_manifest(data, size, seed, skips)
        write_manifest(output, data, entries)
    if skips.escaped:
        console.print(f"[yellow]{skips.summary()}[/]", highlight=False, soft_wrap=True)
    console.print(f"wrote {output}: {len(entries)} images from {data} (seed {seed}); "
                  f"use it with edge-fer quantize --calib {output}")


@app.command()
@user_errors
def quantize(
    model: Annotated[Path, typer.Argument(help="Float ONNX model from edge-fer export")],
    output: Annotated[Path, typer.Option("--output", "-o", help="INT8 model (.onnx for cpu/jetson, .xml for intel)")],
    calib: Annotated[str | None, typer.Option(
        help="Calibration images: a folder, or a manifest from edge-fer calib make (default: embedded faces)")] = None,
    target: Annotated[str, typer.Option(help="cpu (ONNX Runtime) | jetson (TensorRT QDQ) | intel (OpenVINO)")] = "cpu",
    method: Annotated[str | None, typer.Option(
        help="Activation ranges: minmax | entropy (KL clip) | percentile (--percentile of |x|); "
             "default percentile")] = None,
    percentile: Annotated[float | None, typer.Option(
        callback=finite, help="With --method percentile: the percentile of |x| each range keeps (default 99.999)")
    ] = None,
    per_channel: Annotated[bool, typer.Option("--per-channel/--per-tensor", help="Weight scales")] = True,
    depthwise: Annotated[str | None, typer.Option(
        help="Depthwise convs: int8 | float (default float for jetson and intel, int8 for cpu: chosen on FER+ val)")
    ] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        help="Node names or op types to keep float (repeat, or comma-separated)")] = None,
    max_drop: Annotated[float | None, typer.Option(
        callback=finite, min=0.0,
        help="Accuracy budget, points: keep sensitive layers float until met (with --qat: run QAT only if PTQ "
             "misses it); needs --val")] = None,
    min_agreement: Annotated[float | None, typer.Option(
        callback=finite, min=0.0, max=100.0,
        help="With --qat: top-1 agreement with float (percent) PTQ must reach on --val, else QAT runs")] = None,
    val: Annotated[Path | None, typer.Option(
        help="Labelled folder VAL/<class>/*.png for --max-drop/--min-agreement")] = None,
    qat: Annotated[Path | None, typer.Option(
        help="Quantization-aware fine-tuning on this folder of face images (e.g. FER+ train; labels unused)")] = None,
    qat_epochs: Annotated[int, typer.Option(min=1, help="QAT epochs")] = 2,
    qat_lr: Annotated[float, typer.Option(min=0.0, help="QAT learning rate (Adam, cosine decay)")] = 2e-5,
    qat_images: Annotated[int, typer.Option(min=0, help="QAT on a seeded sample of N images (0: all)")] = 0,
    size: Annotated[int, typer.Option(min=1, help="Images sampled when --calib is a folder")] = 512,
    seed: Annotated[int, typer.Option(help="Sampling seed when --calib is a folder")] = 0,
    classes: Annotated[str | None, typer.Option(help="Class names a,b,c for a model without edge-fer metadata")] = None,
    img_size: Annotated[int | None, typer.Option(
        min=32, max=1024, help="Input size for a model without edge-fer metadata")] = None,
    reduce_range: Annotated[bool | None, typer.Option(
        "--reduce-range/--full-range", help="7- or 8-bit weights (cpu/intel; default: 7 where this CPU lacks VNNI)")
    ] = None,
) -> None:
    """Post-training INT8 quantization; writes the model and OUT.json (calibration, agreement, sizes)."""
    from edge_fer.quantize import choices, run
    from edge_fer.quantize.options import QuantizeOptions
    from edge_fer.quantize.qat import QatOptions
    if target in choices.TARGETS:  # before the calibration images load: a refused -o costs nothing
        run.check_outputs(model, output, target, calib if calib and Path(calib).is_file() else None)
    names = [n.strip() for e in exclude or [] for n in e.split(",") if n.strip()]
    opts = QuantizeOptions(target, method, per_channel, names, classes, img_size, max_drop, val, reduce_range,
                           qat and QatOptions(qat, qat_epochs, qat_lr, max_images=qat_images, seed=seed), min_agreement,
                           depthwise, percentile)
    with console.status("loading calibration images") as status:
        images, desc = _calibration(calib, size, seed)
        status.update(f"quantizing {model.name} for {target} on {desc['n_images']} images")
        report = run.quantize(model, output, images, opts, desc, log=lambda msg: status.update(msg), console=console)
    console.print("\n".join(run.summary_lines(report, desc)))


def _calibration(calib: str | None, size: int, seed: int):
    """The calibration images and their description; skipped files are counted in one yellow line."""
    from edge_fer.data.dataset import SkipReport
    from edge_fer.quantize.calibration import load_calibration

    skips = SkipReport()
    images, desc = load_calibration(calib, size, seed, skips)
    if skips.skipped:
        console.print(f"[yellow]{skips.summary()}[/]")
    return images, desc
