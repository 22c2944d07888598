"""Device engines (``edge-fer build``): what both targets share, the per-target options, the source model.

The targets live beside it: :mod:`edge_fer.build.openvino` (intel) and :mod:`edge_fer.build.jetson`.
The input is an ONNX from ``edge-fer export``, or a checkpoint (exported first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.build.tensorrt import EngineSettings
from edge_fer.export.onnx_io import OnnxModel, metadata_of, read_onnx

TARGETS = ("intel", "jetson")
DEFAULT_PRECISION = {"intel": "fp32", "jetson": "fp16"}
# Options that mean something for one target only; giving them to the other is an error, not silently ignored.
TARGET_OPTIONS = {
    "intel": ("--device", "--hint", "--threads", "--cache-dir"),
    "jetson": ("--dla-core", "--gpu-fallback", "--workspace", "--timing-cache", "--opt-batch", "--max-batch",
               "--implicit-int8", "--calib-cache", "--bundle", "--deepstream", "--tensorrt"),
}


def check_target_options(target: str, given: dict[str, object]) -> None:
    """``given``: option -> value (None/False = not given); options of the other target are an error."""
    if target not in TARGETS:
        raise EdgeFerError(f"--target {target!r}: use one of {', '.join(TARGETS)}")
    foreign = [name for other, names in TARGET_OPTIONS.items() if other != target
               for name in names if given.get(name) is not None and given.get(name) is not False]  # 0 is given
    if foreign:
        raise EdgeFerError(f"{', '.join(foreign)}: not an option for --target {target}")


@dataclass
class BuildOptions:
    """Everything ``edge-fer build`` was asked, filled by the CLI (field names are the flags'); a bundle's
    ``build.sh`` asks the Jetson's edge-fer for the same engine settings (:func:`engine_settings`)."""

    model: Path
    target: str
    output: Path | None = None
    precision: str | None = None
    calib: str | None = None
    size: int = 512
    seed: int = 0
    device: str | None = None
    hint: str | None = None
    threads: int | None = None
    cache_dir: Path | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    workspace: int | None = None
    timing_cache: Path | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    implicit_int8: bool = False
    calib_cache: Path | None = None
    bundle: Path | None = None
    deepstream: bool = False
    tensorrt: str | None = None


def engine_settings(opts: BuildOptions, precision: str) -> EngineSettings:
    """The TensorRT settings of a jetson build (``--opt-batch`` default 1)."""
    return EngineSettings(precision, opts.dla_core, opts.gpu_fallback, opts.workspace,
                          str(opts.timing_cache) if opts.timing_cache else None, opts.opt_batch or 1, opts.max_batch,
                          opts.implicit_int8, str(opts.calib_cache) if opts.calib_cache else None, opts.tensorrt)


@dataclass(frozen=True)
class CalibrationSource:
    """Where an INT8 build's calibration images come from: ``--calib`` (a folder or a manifest; None: the
    embedded faces) and, for a folder, the sample's size and seed."""

    calib: str | None = None
    size: int = 512
    seed: int = 0


def run(opts: BuildOptions, log: Callable[[str], None]) -> dict:
    """The build stage: options checked for the target, then the OpenVINO IR, the engine or the bundle."""
    check_target_options(opts.target, {flag: getattr(opts, flag[2:].replace("-", "_"))
                                       for flags in TARGET_OPTIONS.values() for flag in flags})
    precision = opts.precision or DEFAULT_PRECISION[opts.target]
    calibration = CalibrationSource(opts.calib, opts.size, opts.seed)
    if opts.target == "intel":
        from edge_fer.build.openvino import IntelBuild, build_intel

        if opts.output is None:
            raise EdgeFerError("--target intel: give the output folder with -o DIR")
        return build_intel(IntelBuild(opts.model, opts.output, precision, opts.device or "CPU", opts.hint or "LATENCY",
                                      opts.threads, opts.cache_dir, calibration), log)
    from edge_fer.build.jetson import JetsonBuild, build_jetson

    return build_jetson(JetsonBuild(opts.model, opts.output, engine_settings(opts, precision), calibration,
                                    opts.bundle, opts.deepstream), log)


def summary_lines(report: dict, target: str) -> list[str]:
    """What the build wrote and what it computes in, then its warnings (for the terminal)."""
    if target == "intel":
        lines = [f"wrote {report['output']}/ ({', '.join(report['files'])}): {report['device']} "
                 f"{report['requested_precision']} requested, computes in "
                 f"{report.get('actual_precision', 'n/a (not compiled here)')}; {report['performance_hint']}, "
                 f"{report.get('streams', '?')} stream(s), {report.get('threads', '?')} thread(s)"]
        lines += [f"[yellow]warning:[/] {note}" for note in (report.get("warning"), report.get("note")) if note]
    elif "bundle" in report:
        lines = [f"wrote bundle {report['bundle']}/ ({', '.join(report['files'])}); copy it to the Jetson and run "
                 "build.sh there"]
    else:
        lines = [f"wrote {report['engine']} + {Path(report['sidecar']).name} (TensorRT {report['tensorrt_version']}, "
                 f"{report['precision']}, layers {report['layers']})"]
    calib_warning = (report.get("calibration") or {}).get("warning")
    return lines + ([f"[yellow]warning:[/] {calib_warning}"] if calib_warning else [])


# ----------------------------------------------------------------------------- input model


def load_source(model: Path, work: Path, log: Callable[[str], None]) -> OnnxModel:
    """The ONNX to build from, read once: ``model`` itself, or a checkpoint exported into ``work``."""
    if not model.exists():
        raise EdgeFerError(f"{model}: file not found")
    if model.is_dir() or model.suffix.lower() in (".safetensors", ".json"):
        from edge_fer.artifacts.checkpoint import load_checkpoint
        from edge_fer.data.faces import embedded_faces
        from edge_fer.export.onnx_export import export_checkpoint

        log("exporting the checkpoint to ONNX (verified against PyTorch)")
        path = work / "model.onnx"
        export_checkpoint(load_checkpoint(model), path, embedded_faces()[:32])
        model = path
    elif model.suffix.lower() != ".onnx":
        raise EdgeFerError(f"{model}: give the .onnx from edge-fer export (or a checkpoint to export first)")
    proto = read_onnx(model)
    return OnnxModel(model, proto, metadata_of(proto, model))


def calibration_images(source: CalibrationSource, log: Callable[[str], None]):
    """``(images, description)`` from :func:`edge_fer.quantize.calibration.load_calibration`."""
    from edge_fer.data.dataset import SkipReport
    from edge_fer.quantize.calibration import load_calibration

    skips = SkipReport()
    images, desc = load_calibration(source.calib, source.size, source.seed, skips)
    if skips.skipped:
        log(skips.summary())
    return images, desc
