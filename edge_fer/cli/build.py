"""``edge-fer build``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_fer.cli.app import app, console, user_errors


@app.command()
@user_errors
def build(
    model: Annotated[Path, typer.Argument(help="Float ONNX from edge-fer export, or a checkpoint (exported first); "
                                               "jetson int8 also takes the QDQ ONNX of quantize --target jetson")],
    target: Annotated[str, typer.Option(help="intel (OpenVINO IR) | jetson (TensorRT engine)")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="intel: output folder (model.xml/.bin, build.json); jetson: the .engine file")] = None,
    precision: Annotated[str | None, typer.Option(
        help="intel: fp32 | fp16 | bf16 | int8 (default fp32); jetson: fp16 | int8 (default fp16)")] = None,
    calib: Annotated[str | None, typer.Option(
        help="int8 calibration images: a folder, or a manifest from edge-fer calib make (default: embedded faces)")
    ] = None,
    size: Annotated[int, typer.Option(min=1, help="Images sampled when --calib is a folder")] = 512,
    seed: Annotated[int, typer.Option(help="Sampling seed when --calib is a folder")] = 0,
    device: Annotated[str | None, typer.Option(help="intel: CPU | GPU | NPU | AUTO (default CPU)")] = None,
    hint: Annotated[str | None, typer.Option(help="intel: LATENCY (default) | THROUGHPUT")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="intel: inference threads (default: OpenVINO's)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="intel: compiled-model cache (CACHE_DIR), warmed by the build")
                         ] = None,
    dla_core: Annotated[int | None, typer.Option(min=0, help="jetson: build for DLA core N")] = None,
    gpu_fallback: Annotated[bool, typer.Option("--gpu-fallback", help="jetson: layers DLA cannot run go to the GPU")
                            ] = False,
    workspace: Annotated[int | None, typer.Option(min=1, help="jetson: TensorRT workspace limit, MiB")] = None,
    timing_cache: Annotated[Path | None, typer.Option(help="jetson: TensorRT timing cache file (read and updated)")
                            ] = None,
    opt_batch: Annotated[int | None, typer.Option(
        min=1, help="jetson: batch the engine is tuned for (default 1)")] = None,
    max_batch: Annotated[int | None, typer.Option(
        min=1, help="jetson: largest batch (default 8; DLA: --opt-batch)")] = None,
    implicit_int8: Annotated[bool, typer.Option(
        "--implicit-int8", help="jetson, TensorRT 8.x: calibrate the float ONNX in TensorRT (entropy calibrator)")
    ] = False,
    calib_cache: Annotated[Path | None, typer.Option(help="jetson: --implicit-int8 cache (default ENGINE.calib)")
                           ] = None,
    bundle: Annotated[Path | None, typer.Option(
        help="jetson: write a folder that builds the engine on the Jetson (ONNX, metadata, build.sh) instead")] = None,
    deepstream: Annotated[bool, typer.Option("--deepstream", help="jetson: also a DeepStream nvinfer config, "
                                                                  "labels and grey-input engine")] = False,
    tensorrt: Annotated[str | None, typer.Option(
        "--tensorrt", help="jetson --bundle: TensorRT release on the Jetson, 8.6 | 10.x | 11.x (default 10.3)")
    ] = None,
) -> None:
    """Device engine: OpenVINO IR (intel) or TensorRT engine + sidecar (jetson), or a bundle to build on the Jetson."""
    from edge_fer.build.run import BuildOptions, summary_lines
    from edge_fer.build.run import run as run_build

    opts = BuildOptions(model, target, output, precision, calib, size, seed, device, hint, threads, cache_dir, dla_core,
                        gpu_fallback, workspace, timing_cache, opt_batch, max_batch, implicit_int8, calib_cache, bundle,
                        deepstream, tensorrt)
    with console.status(f"building for {target}") as status:
        report = run_build(opts, log=status.update)
    for line in summary_lines(report, target):
        console.print(line, highlight=False, soft_wrap=True)
