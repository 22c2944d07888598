"""Jetson engines (``edge-fer build --target jetson``): built here by :mod:`edge_fer.build.tensorrt`
(fp16 from the float ONNX, int8 from the QDQ ONNX of ``quantize --target jetson``), or, where
TensorRT is absent, packed into a bundle (:mod:`edge_fer.build.bundle`) that builds them on the Jetson."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx

from edge_fer.artifacts.atomic import atomic_path, write_json, write_text
from edge_fer.artifacts.checkpoint import sha256_file
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.build.run import CalibrationSource, calibration_images, load_source
from edge_fer.build.tensorrt import EngineSettings, Flavor, build_engine, check_dla_int8, target_flavor
from edge_fer.export.onnx_io import OnnxModel, is_quantized

FP16_ONNX = "model.fp16.onnx"  # strongly typed fp16: the converted ONNX in the work folder


def _jetson_onnx(source: OnnxModel, job: JetsonBuild, flavor: Flavor, work: Path,
                 log) -> tuple[Path, dict | None, list, dict | None]:
    """(ONNX for TensorRT, quantize report, implicit-calibration batches, calibration description)."""
    from edge_fer.quantize.options import QuantizeOptions
    from edge_fer.quantize.run import quantize
    from edge_fer.quantize.tensorrt_qdq import check_tensorrt_qdq

    onnx_path, proto, settings = source.path, source.proto, job.settings
    if settings.precision == "fp16" or settings.implicit_int8:
        if is_quantized(proto):
            raise EdgeFerError(f"{onnx_path}: already quantized; --precision fp16 and --implicit-int8 build from the "
                               "float ONNX of edge-fer export")
        if not settings.implicit_int8:
            if not flavor.strongly_typed:
                return onnx_path, None, [], None
            from edge_fer.build.float16 import float16_onnx

            log(f"float16 ONNX for strongly typed TensorRT {flavor.label}")
            half = work / FP16_ONNX
            try:
                onnx.save_model(float16_onnx(proto), str(half))
            except (ValueError, onnx.checker.ValidationError) as e:
                raise EdgeFerError(f"{onnx_path}: cannot convert it to float16 ({str(e).splitlines()[0][:200]})") from e
            return half, None, [], None
        from edge_fer.quantize.run import CALIB_BATCH, make_batches

        images, desc = calibration_images(job.calibration, log)
        # the calibrator's batch is fixed
        batches = [b for b in make_batches(images, source.info) if len(b) == CALIB_BATCH]
        return onnx_path, None, batches, desc
    if is_quantized(proto):
        problems = check_tensorrt_qdq(proto)
        if problems:
            raise EdgeFerError(f"{onnx_path}: QDQ graph breaks TensorRT rules ({'; '.join(problems[:3])}); quantize "
                               "the float ONNX with edge-fer quantize --target jetson")
        return onnx_path, None, [], None
    images, desc = calibration_images(job.calibration, log)
    qdq = work / "model.int8.onnx"
    report = quantize(source, qdq, images, QuantizeOptions(target="jetson"), calibration=desc, log=log)
    return qdq, report, [], desc


def _manifest(source: CalibrationSource) -> str | None:
    """The calibration manifest text behind an INT8 build (None for the embedded faces)."""
    from edge_fer.quantize.calibration import is_manifest, make_manifest, manifest_text

    if source.calib is None:
        return None
    if is_manifest(source.calib):
        return Path(source.calib).read_text()
    return manifest_text(source.calib, make_manifest(source.calib, source.size, source.seed))


def _deepstream_files(ds_onnx: Path, info: ModelInfo, settings: EngineSettings, flavor: Flavor,
                      stem: str) -> dict[str, str | bytes]:
    from edge_fer.build.deepstream import (
        NvinferSettings,
        calibration_file,
        deepstream_names,
        labels_text,
        needs_calib_file,
        nvinfer_config,
    )

    names = deepstream_names(stem)
    config = nvinfer_config(info, NvinferSettings(stem, settings.precision, int(settings.max_batch or 1), flavor,
                                                  settings.dla_core))
    files: dict[str, str | bytes] = {names["onnx"]: ds_onnx.read_bytes(), names["config"]: config,
                                     names["labels"]: labels_text(info.classes)}
    if needs_calib_file(settings.precision, flavor):
        files[names["calib"]] = calibration_file(onnx.load(str(ds_onnx)), flavor)
    return files


@dataclass(frozen=True)
class JetsonBuild:
    """One ``--target jetson`` build: the model (float or QDQ ONNX, or a checkpoint), the engine file to build
    here or else the bundle folder that builds it on the Jetson, the engine settings, the calibration images
    for int8, and whether the DeepStream pieces come too."""

    model: Path | str
    output: Path | str | None
    settings: EngineSettings
    calibration: CalibrationSource = field(default_factory=CalibrationSource)
    bundle: Path | str | None = None
    deepstream: bool = False


def _checked(job: JetsonBuild, log: Callable[[str], None]) -> tuple[JetsonBuild, Flavor]:
    """``job`` checked before any export or quantization, with the settings DLA INT8 and ``--implicit-int8``
    imply; and the TensorRT release it builds for."""
    from edge_fer.build.bundle import check_bundle_folder

    output, bundle, settings = job.output, job.bundle, job.settings
    if (output is None) == (bundle is None):
        raise EdgeFerError("--target jetson: give -o model.engine (build here, needs TensorRT) or --bundle DIR "
                           "(a folder that builds it on the Jetson), not both")
    if bundle is not None:
        check_bundle_folder(Path(bundle), settings)
    else:
        output = Path(str(output))
        if output.suffix.lower() not in (".engine", ".plan", ".trt"):
            raise EdgeFerError(f"-o {output}: a TensorRT engine file ends in .engine (or .plan/.trt)")
        if not output.parent.is_dir():
            raise EdgeFerError(f"-o {output}: folder {output.parent} does not exist; create it or choose another path")
    flavor = target_flavor(settings, bundle is not None)
    if settings.dla_core is not None and settings.precision == "int8" and not settings.implicit_int8:
        check_dla_int8(settings, flavor, False, str(job.model))  # TensorRT >= 10: refused before any work
        if bundle is not None:
            raise EdgeFerError(f"--precision int8 --dla-core {settings.dla_core}: DLA INT8 on TensorRT {flavor.label} "
                               "is calibrated inside TensorRT (implicit INT8), which a bundle cannot do; run edge-fer "
                               "build on the Jetson, or bundle DLA fp16 (--precision fp16)")
        log("DLA INT8: implicit quantization (TensorRT calibrates the float ONNX; DLA runs no Q/DQ)")
        settings = replace(settings, implicit_int8=True)
    if job.deepstream and settings.implicit_int8:
        raise EdgeFerError("--deepstream builds a second (grey-input) engine; use the QDQ INT8 path on the GPU, "
                           "not --implicit-int8 (nor DLA INT8, which calibrates implicitly)")
    if bundle is None and settings.implicit_int8 and not settings.calib_cache:
        settings = replace(settings, calib_cache=f"{output}.calib")
    return replace(job, output=output, settings=settings), flavor


def build_jetson(job: JetsonBuild, log: Callable[[str], None] = lambda _msg: None) -> dict:
    """A TensorRT engine at ``job.output`` (with sidecar), or with ``job.bundle`` a folder that builds it on the
    Jetson."""
    from edge_fer.backends.tensorrt_backend import sidecar_path
    from edge_fer.build.bundle import ENGINE_NAME

    job, flavor = _checked(job, log)
    settings, output, bundle = job.settings, job.output, job.bundle
    with tempfile.TemporaryDirectory(prefix="edge-fer-build-") as tmp:
        work = Path(tmp)
        model = load_source(Path(job.model), work, log)
        trt_onnx, qreport, batches, desc = _jetson_onnx(model, job, flavor, work, log)
        source = {"model": str(job.model), "onnx_sha256": sha256_file(model.path)}
        ds_onnx = None
        if job.deepstream:
            from edge_fer.build.deepstream import deepstream_onnx

            ds_onnx = work / "model.deepstream.onnx"
            onnx.save_model(deepstream_onnx(onnx.load(str(trt_onnx))), str(ds_onnx))
        if bundle is not None:
            from edge_fer.build.bundle import BundleContents, write_bundle

            ds_files = (_deepstream_files(ds_onnx, model.info, settings, flavor, Path(ENGINE_NAME).stem)
                        if ds_onnx else None)
            contents = BundleContents(trt_onnx, source, model.path if trt_onnx.name == FP16_ONNX else None, ds_files,
                                      _manifest(job.calibration) if qreport else None, qreport)
            return {"bundle": str(bundle), "files": write_bundle(bundle, contents, model.info, settings, flavor),
                    "calibration": desc}
        extra = {"source": source, "calibration": desc,
                 "float_vs_int8_heldout": qreport.get("float_vs_int8_heldout") if qreport else None}
        engine_bytes, sidecar = build_engine(trt_onnx, settings, model.info, batches, extra, log)
        written = _deepstream_engine(ds_onnx, output, settings, flavor, model.info, source, log) if ds_onnx else []
        write_engine(output, engine_bytes, sidecar)
    return {"engine": str(output), "sidecar": str(sidecar_path(output)),
            "files": [*written, output.name, sidecar_path(output).name],
            "tensorrt_version": sidecar["tensorrt_version"], "precision": settings.precision,
            "layers": sidecar["layers"]["summary"], "calibration": desc}


def _deepstream_engine(ds_onnx: Path, output: Path, settings: EngineSettings, flavor: Flavor, info: ModelInfo,
                       source: dict, log: Callable[[str], None]) -> list[str]:
    """Build the grey-input engine and write it with its ONNX, nvinfer config and labels next to ``output``."""
    from edge_fer.backends.tensorrt_backend import sidecar_path
    from edge_fer.build.deepstream import deepstream_names

    log("building the DeepStream (grey-input) engine")
    ds_bytes, ds_sidecar = build_engine(ds_onnx, settings, info, (), {"variant": "deepstream", "source": source}, log)
    written = []
    for name, content in _deepstream_files(ds_onnx, info, settings, flavor, output.stem).items():
        if isinstance(content, bytes):
            with atomic_path(output.parent / name) as path:
                path.write_bytes(content)
        else:
            write_text(output.parent / name, content)
        written.append(name)
    engine = output.parent / deepstream_names(output.stem)["engine"]
    write_engine(engine, ds_bytes, ds_sidecar)
    return [*written, engine.name, sidecar_path(engine).name]


def write_engine(out: Path | str, engine_bytes: bytes, sidecar: dict) -> None:
    """Write the sidecar, then the engine, each atomically (an engine never appears without its sidecar)."""
    from edge_fer.backends.tensorrt_backend import sidecar_path

    out = Path(out)
    write_json(sidecar_path(out), sidecar)
    with atomic_path(out) as tmp:
        tmp.write_bytes(engine_bytes)
