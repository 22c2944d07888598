"""The ``edge-fer`` command line: one subcommand per pipeline verb.

Every command turns :class:`EdgeFerError` into one red line and exit code 1;
nothing else in the package imports this module.
"""

from __future__ import annotations

import functools
import math
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from edge_fer.artifacts.errors import EdgeFerError, describe_os_error

app = typer.Typer(
    help="Take a facial-expression CNN from PyTorch to embedded devices, and prove nothing was lost.\n\n"
    "Pipeline: train -> export -> quantize -> build -> bench; predict runs any artifact on photos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` removes its temp files."""


def _terminate(signum: int, _frame) -> None:
    raise Interrupted(signum)


@app.callback()
def _root() -> None:
    """Take a facial-expression CNN from PyTorch to embedded devices, and prove nothing was lost."""
    signal.signal(signal.SIGTERM, _terminate)


def _say_error(message: str) -> None:
    console.print(f"[bold red]error:[/] {' '.join(message.split())}", highlight=False, soft_wrap=True)


def user_errors(fn: F) -> F:
    """The error boundary: every failure becomes one line and a non-zero exit, never a traceback.

    EdgeFerError (exit 1) and OSError (exit 1, naming the path and the fix) are the user's
    to fix; anything else is a bug in edge-fer (exit 2).  ``EDGE_FER_DEBUG=1`` re-raises
    with the traceback.  Ctrl-C and SIGTERM exit 130/143 after the temp files are gone.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = os.environ.get("EDGE_FER_DEBUG") == "1"
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except EdgeFerError as e:
            if debug:
                raise
            _say_error(str(e))
            raise typer.Exit(1) from None
        except KeyboardInterrupt as e:
            if debug:
                raise
            term = isinstance(e, Interrupted)
            _say_error(f"{'terminated (SIGTERM)' if term else 'interrupted (Ctrl-C)'}; no partial output was left")
            raise typer.Exit(143 if term else 130) from None
        except OSError as e:
            if debug:
                raise
            _say_error(describe_os_error(e))
            raise typer.Exit(1) from None
        except Exception as e:
            if debug:
                raise
            _say_error(f"internal error {type(e).__name__}: {e} (a bug in edge-fer; rerun with EDGE_FER_DEBUG=1 "
                       "for the traceback and report it)")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _finite(value: float | None) -> float | None:
    """typer's min/max let NaN through (every comparison with NaN is false): refuse it at parse time."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _positive(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a positive finite number")
    return value


@app.command()
@user_errors
def train(
    data: Annotated[Path, typer.Option(help="Dataset root: DATA/{train,val,test}/<class>/*.png (val optional)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the checkpoint and figures")] = Path(
        "runs/train"),
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (ignored when --schedule is given)")] = 40,
    schedule: Annotated[str, typer.Option(
        help="Resolution schedule SIZE:EPOCHS,..., e.g. 96:20,224:2; the last size must equal --img-size")] = "",
    batch_size: Annotated[int, typer.Option(
        min=1, help="Images per step (per process under torchrun: global batch = batch size x processes)")] = 64,
    lr: Annotated[float, typer.Option(
        callback=_positive, help="Peak AdamW learning rate (warm-up 1 epoch, then cosine)")] = 2e-3,
    img_size: Annotated[int, typer.Option(
        min=32, max=1024, help="Input size the model runs at (FER+ crops are 48 px)")] = 64,
    width: Annotated[float, typer.Option(
        callback=_positive, max=4.0, help="Width multiplier on every layer's channels")] = 1.0,
    attention: Annotated[str, typer.Option(help="cbam | se | none")] = "cbam",
    head: Annotated[str, typer.Option(help="cosine (ArcFace + Center, the seed's) | linear (softmax + Center)")
                    ] = "cosine",
    neck: Annotated[str, typer.Option(help="none | bn: BatchNorm1d on the pooled embedding (folded at export)")
                    ] = "bn",
    labels: Annotated[str, typer.Option(
        help="majority | votes: train on FER+ annotator vote distributions (labels.csv); val/test use majority")
                      ] = "votes",
    logit_adjust: Annotated[float, typer.Option(
        callback=_finite,
        help="tau of the logit-adjusted loss (train logits + tau*log prior): lifts rare-class recall; 0 = off")
                            ] = 0.0,
    margin: Annotated[float, typer.Option(
        callback=_finite, min=0.0, max=1.5, help="ArcFace additive angular margin (radians; cosine head)")] = 0.1,
    scale: Annotated[float, typer.Option(callback=_positive, help="ArcFace / cosine-head scale s")] = 16.0,
    center_weight: Annotated[float, typer.Option(
        callback=_finite, min=0.0, help="lambda of the Center loss term")] = 0.1,
    center_lr: Annotated[float, typer.Option(
        callback=_finite, min=0.0, help="SGD learning rate of the class centres")] = 0.5,
    balance: Annotated[str, typer.Option(help="Class weights: none | sqrt | full (sklearn 'balanced')")] = "sqrt",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for splits, augmentation and init")] = 0,
    amp: Annotated[bool, typer.Option(help="bf16/fp16 autocast where the hardware supports it")] = True,
    limit_per_class: Annotated[int, typer.Option(min=0, help="Use at most N train images per class (quick runs)")] = 0,
    keep_near_dups: Annotated[bool, typer.Option(
        help="Keep train images that labels.csv marks as duplicates of val/test images")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run saved in OUT/last")] = False,
    init: Annotated[Path | None, typer.Option(
        help="Fine-tune: start from this checkpoint's weights (same architecture, any input size)")] = None,
    recalibrate_bn: Annotated[int, typer.Option(
        min=0,
        help="Re-estimate BatchNorm statistics on N train images before epoch 1 and at each new schedule size")
                              ] = 0,
) -> None:
    """Train FERNet (the seed's CNN) with ArcFace + Center loss; writes model.safetensors + model.json.

    Several GPUs (DDP, one process each): torchrun --nproc_per_node N -m edge_fer.cli train ...
    """
    from edge_fer.train.trainer import TrainConfig, parse_schedule
    from edge_fer.train.trainer import train as run_train

    stages = parse_schedule(schedule) if schedule else []
    if stages and stages[-1][0] != img_size:
        raise EdgeFerError(f"--schedule {schedule!r} ends at {stages[-1][0]}px but --img-size is {img_size}; "
                           f"end the schedule with {img_size}:N")
    for flag, value, allowed in (("--attention", attention, ("cbam", "se", "none")),
                                 ("--head", head, ("cosine", "linear")), ("--neck", neck, ("none", "bn")),
                                 ("--labels", labels, ("majority", "votes"))):
        if value not in allowed:
            raise EdgeFerError(f"{flag} {value!r}: use {', '.join(allowed)}")
    cfg = TrainConfig(data=str(data), out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, img_size=img_size,
                      schedule=stages, width=width, attention=attention, head=head, neck=neck,
                      labels=labels, logit_adjust=logit_adjust, margin=margin, scale=scale,
                      center_weight=center_weight, center_lr=center_lr, balance=balance, seed=seed, device=device,
                      amp=amp, limit_per_class=limit_per_class, keep_near_dups=keep_near_dups,
                      init=str(init) if init else "", recalibrate_bn=recalibrate_bn)
    run_train(cfg, resume=resume, console=console)


def _checkpoint_path(checkpoint: Path | None) -> Path:
    from edge_fer.artifacts.defaults import default_checkpoint

    return checkpoint if checkpoint is not None else default_checkpoint()


@app.command("eval")
@user_errors
def evaluate(
    data: Annotated[Path, typer.Option(help="Labelled folder DATA/<class>/*.png, e.g. ../shared/data/ferplus/test")],
    checkpoint: Annotated[Path | None, typer.Argument(help="Checkpoint (default: the shipped reference model)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write metrics.json + confusion_matrix.png here")
                   ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass")] = 64,
) -> None:
    """Accuracy, per-class recall and confusion matrix of a checkpoint on a labelled folder."""
    from edge_fer.train.evaluate import evaluate_checkpoint

    evaluate_checkpoint(_checkpoint_path(checkpoint), data, out, batch_size, console)


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
        callback=_finite, min=0.0, help="Max |logit difference| allowed vs PyTorch")] = 1e-3,
) -> None:
    """Export to ONNX and verify it against PyTorch on real faces (fails on mismatch)."""
    from edge_fer.artifacts.checkpoint import load_checkpoint
    from edge_fer.data.dataset import IMAGE_SUFFIXES, SkipReport, inside, load_images
    from edge_fer.data.faces import embedded_faces
    from edge_fer.export.onnx_export import export_checkpoint

    ckpt = load_checkpoint(_checkpoint_path(checkpoint))
    if calib is None:
        faces = embedded_faces()
    else:
        files = [p for p in sorted(calib.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and inside(calib, p)][:200]
        faces, _ = load_images(files, SkipReport())
        if not faces:
            raise EdgeFerError(f"{calib}: no readable images to verify the export on")
    cmp = export_checkpoint(ckpt, output, faces, opset, dynamic_batch, img_size, tolerance)
    console.print(f"wrote {output} (opset {opset}); verified vs PyTorch on {cmp}")


@app.command()
@user_errors
def info(
    checkpoint: Annotated[Path | None, typer.Argument(help="Checkpoint (default: the shipped reference model)")] = None,
) -> None:
    """Which model is in use, and its model-card summary (classes, accuracy, training)."""
    from edge_fer.artifacts.checkpoint import load_checkpoint

    path = _checkpoint_path(checkpoint)
    ckpt = load_checkpoint(path)
    cfg = ckpt.config
    params = sum(p.numel() for p in ckpt.model.parameters())
    console.print(f"model      {path}")
    console.print(f"arch       FERNet width {cfg.width}, attention {cfg.attention}, {cfg.head} head, neck {cfg.neck}, "
                  f"input {cfg.img_size}px, {params / 1e6:.2f} M parameters")
    console.print(f"classes    {', '.join(ckpt.classes)}")
    metrics = ckpt.extra.get("metrics", {})
    for split in ("test", "val", "fer_mini_test"):
        if split in metrics:
            m = metrics[split]
            macro = f", macro recall {m['macro_recall']:.2%}" if "macro_recall" in m else ""
            console.print(f"{split:<10} accuracy {m.get('accuracy', float('nan')):.2%}{macro} (n={m.get('n', '?')})")
    training = ckpt.extra.get("training", {})
    if training:
        console.print(f"trained    {training.get('command', '')}  ({training.get('wall_time_s', 0) / 60:.0f} min "
                      f"on {training.get('machine', {}).get('cpu', '?')})")
    card = path.parent.parent / "README.md"
    if card.is_file():
        console.print(f"card       {card}")


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
    import json

    from rich.progress import Progress

    from edge_fer.backends import open_runner
    from edge_fer.data.dataset import SkipReport
    from edge_fer.predict.faces import FaceDetector
    from edge_fer.predict.run import collect_sources, summary_lines
    from edge_fer.predict.run import predict as run_predict

    skips = SkipReport()
    sources = collect_sources(inputs or [], camera, skips)
    detector = FaceDetector(min_face=min_face, detect=not no_detect, yunet=yunet)
    path = _checkpoint_path(engine)
    runner = open_runner(path)
    with Progress(console=console, transient=True) as progress:
        report = run_predict(sources, runner, detector, str(path), out, progress=progress, skips=skips)
    for line in summary_lines(report):
        console.print(line, highlight=False, soft_wrap=True)
    if out is not None:
        console.print(f"wrote {out}/ (annotated images/videos, predictions.json)", highlight=False)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))


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
    from edge_fer.quantize.calibration import make_manifest, write_manifest

    if output is None:  # the design's calibration/ folder, created on first use (a fresh install has none)
        resolved = data.resolve()
        output = Path("calibration") / f"{resolved.parent.name}-{resolved.name}-{size}.txt"
        output.parent.mkdir(exist_ok=True)
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
        help="Activation ranges: minmax | entropy (KL clip) | percentile (99.99th |x|); "
             "default entropy for cpu/jetson, minmax for intel")] = None,
    per_channel: Annotated[bool, typer.Option("--per-channel/--per-tensor", help="Weight scales")] = True,
    exclude: Annotated[list[str] | None, typer.Option(
        help="Node names or op types to keep float (repeat, or comma-separated)")] = None,
    max_drop: Annotated[float | None, typer.Option(
        callback=_finite, min=0.0,
        help="Accuracy budget, points: keep sensitive layers float until met; needs --val")] = None,
    val: Annotated[Path | None, typer.Option(help="Labelled folder VAL/<class>/*.png for --max-drop")] = None,
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
    from edge_fer.data.dataset import SkipReport
    from edge_fer.quantize.calibration import load_calibration
    from edge_fer.quantize.run import TARGETS, check_outputs
    from edge_fer.quantize.run import quantize as run_quantize

    if target in TARGETS:  # before the calibration images load: a refused -o costs nothing
        check_outputs(model, output, target, calib if calib and Path(calib).is_file() else None)
    names = [n.strip() for e in exclude or [] for n in e.split(",") if n.strip()]
    skips = SkipReport()
    with console.status("loading calibration images") as status:
        images, desc = load_calibration(calib, size, seed, skips)
        if skips.skipped:
            console.print(f"[yellow]{skips.summary()}[/]")
        status.update(f"quantizing {model.name} for {target} on {desc['n_images']} images")
        report = run_quantize(model, output, images, target, method, per_channel, names, desc, classes, img_size,
                              max_drop, val, reduce_range, log=lambda msg: status.update(msg))
    cmp = report.get("float_vs_int8_heldout", {})
    console.print(f"wrote {report['output']} ({report['sizes_bytes']['int8'] / 1e6:.2f} MB, "
                  f"{report['quantize_seconds']:.1f} s); held-out float vs INT8: top-1 agreement "
                  f"{cmp.get('top1_agreement', float('nan')):.2%}, max |dlogit| {cmp.get('max_abs_logit_diff', 0):.3f}")
    if "val" in report:
        v = report["val"]
        console.print(f"val accuracy float {v['float_accuracy']:.2%} -> INT8 {v['int8_accuracy']:.2%} "
                      f"(budget {v['max_drop_pt']:.2f} pt)")
    control = report.get("accuracy_control", {})
    for note in (control.get("note"), control.get("warning"), desc.get("warning")):
        if note:
            console.print(f"[yellow]warning:[/] {note}")


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
    from edge_fer.build.run import DEFAULT_PRECISION, check_target_options

    check_target_options(target, {
        "--device": device, "--hint": hint, "--threads": threads, "--cache-dir": cache_dir, "--dla-core": dla_core,
        "--gpu-fallback": gpu_fallback, "--workspace": workspace, "--timing-cache": timing_cache,
        "--opt-batch": opt_batch, "--max-batch": max_batch, "--implicit-int8": implicit_int8,
        "--calib-cache": calib_cache, "--bundle": bundle, "--deepstream": deepstream, "--tensorrt": tensorrt})
    precision = precision or DEFAULT_PRECISION[target]
    with console.status(f"building for {target}") as status:
        def log(msg: str) -> None:
            status.update(msg)

        if target == "intel":
            from edge_fer.build.run import build_intel

            if output is None:
                raise EdgeFerError("--target intel: give the output folder with -o DIR")
            report = build_intel(model, output, precision, device or "CPU", hint or "LATENCY", threads, cache_dir,
                                 calib, size, seed, log)
        else:
            from edge_fer.build.run import build_jetson
            from edge_fer.build.tensorrt import EngineSettings

            settings = EngineSettings(precision, dla_core, gpu_fallback, workspace,
                                      str(timing_cache) if timing_cache else None, opt_batch or 1, max_batch,
                                      implicit_int8, str(calib_cache) if calib_cache else None, tensorrt)
            report = build_jetson(model, output, settings, calib, size, seed, bundle, deepstream, log)
    def say(msg: str) -> None:
        console.print(msg, highlight=False, soft_wrap=True)

    calib_warning = (report.get("calibration") or {}).get("warning")
    if target == "intel":
        say(f"wrote {report['output']}/ ({', '.join(report['files'])}): {report['device']} "
            f"{report['requested_precision']} requested, computes in "
            f"{report.get('actual_precision', 'n/a (not compiled here)')}; {report['performance_hint']}, "
            f"{report.get('streams', '?')} stream(s), {report.get('threads', '?')} thread(s)")
        for note in (report.get("warning"), report.get("note")):
            if note:
                say(f"[yellow]warning:[/] {note}")
    elif "bundle" in report:
        say(f"wrote bundle {report['bundle']}/ ({', '.join(report['files'])}); copy it to the Jetson and run "
            "build.sh there")
    else:
        say(f"wrote {report['engine']} + {Path(report['sidecar']).name} (TensorRT {report['tensorrt_version']}, "
            f"{report['precision']}, layers {report['layers']})")
    if calib_warning:
        say(f"[yellow]warning:[/] {calib_warning}")


@app.command()
@user_errors
def bench(
    checkpoint: Annotated[Path | None, typer.Argument(help="Checkpoint (default: the shipped reference model)")] = None,
    device: Annotated[str, typer.Option(help="cpu (ORT fp32/int8 + torch) | intel (OpenVINO fp32/bf16/int8 + ORT) | "
                                             "jetson (TensorRT fp16/int8 + torch CUDA)")] = "cpu",
    data: Annotated[Path | None, typer.Option(help="Labelled folder for accuracy (default: embedded LFW faces, "
                                                   "agreement only)")] = None,
    backends: Annotated[str | None, typer.Option(help="Only these backends, comma-separated (torch always runs)")
                        ] = None,
    precisions: Annotated[str | None, typer.Option(help="Only these precisions, comma-separated, e.g. int8")] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated")] = "1",
    warmup: Annotated[int, typer.Option(min=0, help="Untimed rounds per backend")] = 20,
    iters: Annotated[int, typer.Option(min=1, help="Timed rounds per backend (interleaved)")] = 200,
    seconds: Annotated[float | None, typer.Option(
        callback=_positive, help="Time rounds for this long instead of --iters")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Threads per runtime (default: runtime's choice)")] = None,
    max_drop: Annotated[float, typer.Option(
        callback=_finite, min=0.0, help="Gate: max accuracy drop vs float, points")] = 1.0,
    min_agreement: Annotated[float, typer.Option(
        callback=_finite, min=0.0, max=1.0, help="Gate: min top-1 agreement with float")] = 0.99,
    out: Annotated[Path, typer.Option("--out", "-o", help="results.json, report.md and PNGs go here")] = Path(
        "bench-out"),
    cache: Annotated[Path, typer.Option(help="Artifact cache (keyed by checkpoint sha256)")] = Path(
        ".edge-fer-cache"),
    calib: Annotated[str | None, typer.Option(
        help="INT8 calibration: a folder (512 sampled, seed 0) or a manifest (default: embedded faces)")] = None,
    energy_seconds: Annotated[float, typer.Option(
        callback=_finite, min=0.0,
        help="jetson: seconds per backend and batch size of tegrastats power sampling")] = 3.0,
    host: Annotated[str | None, typer.Option(help="Run there over SSH: user@host[:port] (edge-fer installed there)")
                    ] = None,
    ssh_option: Annotated[list[str] | None, typer.Option(help="ssh/scp -o KEY=VALUE (repeat)")] = None,
    remote_dir: Annotated[str, typer.Option(help="--host: working folder there")] = "edge-fer-bench",
    remote_edge_fer: Annotated[str, typer.Option(help="--host: the edge-fer command there")] = "edge-fer",
    json_out: Annotated[bool, typer.Option("--json", help="Print results.json to stdout")] = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column in the terminal table (p90, accuracy, "
                                                      "max |dlogit|, full verdicts); report.md always has them")
                    ] = False,
) -> None:
    """Latency and accuracy parity of every backend vs the float model; exit 1 when the gate fails."""
    from edge_fer.bench.remote import Remote

    # a bad --host or --remote-dir fails before anything heavy is imported or read
    remote = Remote.parse(host, ssh_option or [], remote_dir, remote_edge_fer) if host else None
    from edge_fer.bench.run import BenchOptions, recommendation_line, run_bench, run_bench_remote

    try:
        batches = tuple(int(b) for b in batch.split(","))
    except ValueError:
        raise EdgeFerError(f"--batch {batch!r}: expected comma-separated integers, e.g. 1,8") from None
    opts = BenchOptions(device, data, batches, warmup, iters, threads, max_drop, min_agreement, cache, out, calib,
                        _names(backends), _names(precisions), seconds, energy_seconds, wide)
    if remote is not None:
        results = run_bench_remote(_checkpoint_path(checkpoint), opts, remote, console)
    else:
        results = run_bench(_checkpoint_path(checkpoint), opts, console)
    if json_out:
        import json

        typer.echo(json.dumps(results, indent=2))
    console.print(f"report: {out / 'report.md'}", highlight=False)
    if not results["passed"]:
        failed = [f"{n}: {r['verdict']}" for n, r in results["rows"].items() if not r["passed"]]
        console.print("[bold red]error:[/] parity gate failed: " + "; ".join(failed), highlight=False, soft_wrap=True)
    console.print(recommendation_line(results), highlight=False, soft_wrap=True)  # the answer comes last
    if not results["passed"]:
        raise typer.Exit(1)


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
