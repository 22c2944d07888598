"""Jetson engines (``edge-fer build --target jetson``): built here by :mod:`edge_fer.build.tensorrt`
(fp16 from the float ONNX, int8 from the QDQ ONNX of ``quantize --target jetson``), or, where
TensorRT is absent, packed into a bundle (:mod:`edge_fer.build.bundle`) that builds them on the Jetson."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import onnx

from edge_fer.artifacts.atomic import atomic_path, write_text
from edge_fer.artifacts.checkpoint import sha256_file
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.build.run import calibration_images, load_source
from edge_fer.build.tensorrt import EngineSettings, Flavor, build_engine, check_dla_int8, target_flavor, write_engine
from edge_fer.export.onnx_io import is_quantized

FP16_ONNX = "model.fp16.onnx"  # strongly typed fp16: the converted ONNX in the work folder


def _jetson_onnx(onnx_path: Path, proto: onnx.ModelProto, info: ModelInfo, settings: EngineSettings, flavor: Flavor,
                 work: Path, calib: str | None, size: int, seed: int,
                 log) -> tuple[Path, dict | None, list, dict | None]:
    """(ONNX for TensorRT, quantize report, implicit-calibration batches, calibration description)."""
    from edge_fer.quantize.options import QuantizeOptions
    from edge_fer.quantize.run import quantize
    from edge_fer.quantize.tensorrt_qdq import check_tensorrt_qdq

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

        images, desc = calibration_images(calib, size, seed, log)
        batches = [b for b in make_batches(images, info) if len(b) == CALIB_BATCH]  # the calibrator's batch is fixed
        return onnx_path, None, batches, desc
    if is_quantized(proto):
        problems = check_tensorrt_qdq(proto)
        if problems:
            raise EdgeFerError(f"{onnx_path}: QDQ graph breaks TensorRT rules ({'; '.join(problems[:3])}); quantize "
                               "the float ONNX with edge-fer quantize --target jetson")
        return onnx_path, None, [], None
    images, desc = calibration_images(calib, size, seed, log)
    qdq = work / "model.int8.onnx"
    report = quantize(onnx_path, qdq, images, QuantizeOptions(target="jetson"), calibration=desc, log=log)
    return qdq, report, [], desc


def _manifest(calib: str | None, size: int, seed: int) -> str | None:
    """The calibration manifest text behind an INT8 build (None for the embedded faces)."""
    from edge_fer.quantize.calibration import is_manifest, make_manifest, manifest_text

    if calib is None:
        return None
    if is_manifest(calib):
        return Path(calib).read_text()
    return manifest_text(calib, make_manifest(calib, size, seed))


def _deepstream_files(ds_onnx: Path, info: ModelInfo, settings: EngineSettings, flavor: Flavor,
                      stem: str) -> dict[str, str | bytes]:
    from edge_fer.build.deepstream import (
        calibration_file,
        deepstream_names,
        labels_text,
        needs_calib_file,
        nvinfer_config,
    )

    names = deepstream_names(stem)
    config = nvinfer_config(info, onnx_file=names["onnx"], engine_file=names["engine"], labels_file=names["labels"],
                            calib_file=names["calib"], precision=settings.precision, flavor=flavor,
                            batch_size=int(settings.max_batch or 1), dla_core=settings.dla_core)
    files: dict[str, str | bytes] = {names["onnx"]: ds_onnx.read_bytes(), names["config"]: config,
                                     names["labels"]: labels_text(info.classes)}
    if needs_calib_file(settings.precision, flavor):
        files[names["calib"]] = calibration_file(onnx.load(str(ds_onnx)), flavor)
    return files


def build_jetson(model: Path | str, output: Path | str | None, settings: EngineSettings, calib: str | None = None,
                 size: int = 512, seed: int = 0, bundle: Path | str | None = None, deepstream: bool = False,
                 log: Callable[[str], None] = lambda _msg: None) -> dict:
    """A TensorRT engine at ``output`` (with sidecar), or with ``bundle`` a folder that builds it on the Jetson."""
    from edge_fer.backends.tensorrt_backend import sidecar_path
    from edge_fer.build.bundle import ENGINE_NAME, check_bundle_folder

    if (output is None) == (bundle is None):
        raise EdgeFerError("--target jetson: give -o model.engine (build here, needs TensorRT) or --bundle DIR "
                           "(a folder that builds it on the Jetson), not both")
    if bundle is not None:  # every check before any export or quantization
        check_bundle_folder(Path(bundle), settings)
    else:
        output = Path(str(output))
        if output.suffix.lower() not in (".engine", ".plan", ".trt"):
            raise EdgeFerError(f"-o {output}: a TensorRT engine file ends in .engine (or .plan/.trt)")
        if not output.parent.is_dir():
            raise EdgeFerError(f"-o {output}: folder {output.parent} does not exist; create it or choose another path")
    flavor = target_flavor(settings, bundle is not None)
    if settings.dla_core is not None and settings.precision == "int8" and not settings.implicit_int8:
        check_dla_int8(settings, flavor, False, str(model))  # TensorRT >= 10: refused before any work
        if bundle is not None:
            raise EdgeFerError(f"--precision int8 --dla-core {settings.dla_core}: DLA INT8 on TensorRT {flavor.label} "
                               "is calibrated inside TensorRT (implicit INT8), which a bundle cannot do; run edge-fer "
                               "build on the Jetson, or bundle DLA fp16 (--precision fp16)")
        log("DLA INT8: implicit quantization (TensorRT calibrates the float ONNX; DLA runs no Q/DQ)")
        settings = replace(settings, implicit_int8=True)
    if deepstream and settings.implicit_int8:
        raise EdgeFerError("--deepstream builds a second (grey-input) engine; use the QDQ INT8 path on the GPU, "
                           "not --implicit-int8 (nor DLA INT8, which calibrates implicitly)")
    if bundle is None and settings.implicit_int8 and not settings.calib_cache:
        settings = replace(settings, calib_cache=f"{output}.calib")
    with tempfile.TemporaryDirectory(prefix="edge-fer-build-") as tmp:
        work = Path(tmp)
        onnx_path, proto, info = load_source(Path(model), work, log)
        trt_onnx, qreport, batches, desc = _jetson_onnx(onnx_path, proto, info, settings, flavor, work, calib, size,
                                                        seed, log)
        source = {"model": str(model), "onnx_sha256": sha256_file(onnx_path)}
        ds_onnx = None
        if deepstream:
            from edge_fer.build.deepstream import deepstream_onnx

            ds_onnx = work / "model.deepstream.onnx"
            onnx.save_model(deepstream_onnx(onnx.load(str(trt_onnx))), str(ds_onnx))
        if bundle is not None:
            from edge_fer.build.bundle import write_bundle

            ds_files = _deepstream_files(ds_onnx, info, settings, flavor, Path(ENGINE_NAME).stem) if ds_onnx else None
            files = write_bundle(bundle, trt_onnx, info, settings, flavor, deepstream_files=ds_files,
                                 manifest=_manifest(calib, size, seed) if qreport else None,
                                 quantize_report=qreport, source=source,
                                 float_onnx=onnx_path if trt_onnx.name == FP16_ONNX else None)
            return {"bundle": str(bundle), "files": files, "calibration": desc}
        extra = {"source": source, "calibration": desc,
                 "float_vs_int8_heldout": qreport.get("float_vs_int8_heldout") if qreport else None}
        engine_bytes, sidecar = build_engine(trt_onnx, settings, info, batches, extra, log)
        written = _deepstream_engine(ds_onnx, output, settings, flavor, info, source, log) if ds_onnx else []
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
