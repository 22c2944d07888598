"""Device engines (``edge-fer build``): OpenVINO IR for Intel, TensorRT engines (or a bundle) for Jetson.

Float IRs are converted from the verified ONNX and saved with
``compress_to_fp16=False``, so an "fp32" IR really holds fp32 weights; the
precision it *computes* in is chosen when it is compiled (see
:mod:`edge_fer.backends.openvino_backend`), and recorded in its rt_info.
INT8 IRs come from :func:`edge_fer.quantize.run.quantize` (NNCF).  The build compiles
the IR on the requested device and writes ``build.json``: requested vs actual
precision, hint, streams, threads, and a parity check against ONNX Runtime.

Jetson engines are built by :mod:`edge_fer.build.tensorrt` (fp16 from the float ONNX,
int8 from the QDQ ONNX of ``quantize --target jetson``), or, where TensorRT is
absent, packed into a bundle (:mod:`edge_fer.build.bundle`) that builds them on the Jetson.
The input is an ONNX from ``edge-fer export``, or a checkpoint (exported first).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import onnx

from edge_fer.artifacts.atomic import atomic_path, staging_dir, write_json, write_text
from edge_fer.artifacts.checkpoint import sha256_file
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.build.tensorrt import EngineSettings, Flavor, build_engine, check_dla_int8, target_flavor, write_engine

TARGETS = ("intel", "jetson")
HINTS = ("LATENCY", "THROUGHPUT")
DEFAULT_PRECISION = {"intel": "fp32", "jetson": "fp16"}
FP16_ONNX = "model.fp16.onnx"  # strongly typed fp16: the converted ONNX in the work folder
CHECK_FACES = 16  # embedded faces the compiled IR is compared on against ONNX Runtime
INTEL_FILES = ("model.xml", "model.bin", "build.json", "quantize.json")
# Options that mean something for one target only; giving them to the other is an error, not silently ignored.
TARGET_OPTIONS = {
    "intel": ("--device", "--hint", "--threads", "--cache-dir"),
    "jetson": ("--dla-core", "--gpu-fallback", "--workspace", "--timing-cache", "--opt-batch", "--max-batch",
               "--implicit-int8", "--calib-cache", "--bundle", "--deepstream", "--tensorrt"),
}

# What each OpenVINO device can compute; asking for anything else is an error listing these.
INTEL_PRECISIONS = {
    "CPU": ("fp32", "bf16", "fp16", "int8"),
    "GPU": ("fp32", "fp16", "int8"),
    "NPU": ("fp16", "int8"),
    "AUTO": ("fp32", "fp16", "int8"),
}


def check_intel_precision(device: str, precision: str) -> None:
    valid = INTEL_PRECISIONS.get(device.upper())
    if valid is None:
        raise EdgeFerError(f"--device {device!r}: use one of {', '.join(INTEL_PRECISIONS)}")
    if precision not in valid:
        raise EdgeFerError(f"--precision {precision} is not available on {device.upper()}: "
                           f"valid precisions there are {', '.join(valid)}")


def check_target_options(target: str, given: dict[str, object]) -> None:
    """``given``: option -> value (None/False = not given); options of the other target are an error."""
    if target not in TARGETS:
        raise EdgeFerError(f"--target {target!r}: use one of {', '.join(TARGETS)}")
    foreign = [name for other, names in TARGET_OPTIONS.items() if other != target
               for name in names if given.get(name) is not None and given.get(name) is not False]  # 0 is given
    if foreign:
        raise EdgeFerError(f"{', '.join(foreign)}: not an option for --target {target}")


def build_intel_float(onnx_path: Path | str, out_xml: Path | str, precision: str = "fp32",
                      extra: dict[str, str] | None = None) -> Path:
    """ONNX -> OpenVINO IR (xml+bin) with the ONNX's edge-fer metadata (plus ``extra``) in rt_info."""
    import openvino as ov

    from edge_fer.backends.onnxruntime_backend import OrtRunner
    from edge_fer.quantize.run import save_ir

    info = OrtRunner.open(onnx_path).info
    model = ov.convert_model(str(onnx_path))
    props = {**info.to_strings(), "edge_fer.precision": precision, **(extra or {})}
    out_xml = Path(out_xml)
    save_ir(model, out_xml, props)
    return out_xml


# ----------------------------------------------------------------------------- input model


def load_source(model: Path, work: Path, log: Callable[[str], None]) -> tuple[Path, onnx.ModelProto, ModelInfo]:
    """The ONNX to build from, its proto and metadata: ``model`` itself, or a checkpoint exported into ``work``."""
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
    try:
        proto = onnx.load(str(model))
    except Exception as e:  # DecodeError and friends
        raise EdgeFerError(f"{model}: not a readable ONNX model ({str(e).splitlines()[0][:200]})") from e
    info = ModelInfo.from_strings({p.key: p.value for p in proto.metadata_props}, str(model))
    return model, proto, info


def is_quantized(proto: onnx.ModelProto) -> bool:
    return any(n.op_type == "QuantizeLinear" for n in proto.graph.node)


def calibration_images(calib: str | None, size: int, seed: int, log: Callable[[str], None]):
    """``(images, description)`` from :func:`edge_fer.quantize.calibration.load_calibration`."""
    from edge_fer.data.dataset import SkipReport
    from edge_fer.quantize.calibration import load_calibration

    skips = SkipReport()
    images, desc = load_calibration(calib, size, seed, skips)
    if skips.skipped:
        log(skips.summary())
    return images, desc


# ----------------------------------------------------------------------------- intel


def _stamp_ir(xml: Path, props: dict[str, str]) -> None:
    """Add rt_info entries to a written IR (quantize writes the INT8 IR; the build adds its provenance)."""
    import openvino as ov

    from edge_fer.quantize.run import save_ir

    save_ir(ov.Core().read_model(str(xml)), xml, props)


def _compile(xml: Path, onnx_path: Path, precision: str, device: str, hint: str, threads: int | None,
             cache_dir: Path | None) -> dict:
    """Compile on ``device`` and read back what it really runs; compare with ONNX Runtime on embedded faces."""
    import openvino as ov

    from edge_fer.backends.onnxruntime_backend import OrtRunner
    from edge_fer.backends.openvino_backend import OpenVinoRunner
    from edge_fer.data.faces import embedded_faces
    from edge_fer.export.onnx_export import compare_logits
    from edge_fer.train.metrics import batched_logits

    available = ov.Core().available_devices  # e.g. ["CPU", "GPU.0"]; AUTO is virtual and always there
    if device != "AUTO" and not any(d.split(".")[0] == device for d in available):
        return {"compiled": False, "note": f"{device} is not present on this machine (devices: "
                f"{', '.join(available)}); the IR is device-independent: open it there to compile, the runner "
                "reads back the precision"}
    runner = OpenVinoRunner.open(xml, precision=precision, device=device, threads=threads, hint=hint,
                                 cache_dir=str(cache_dir) if cache_dir else None)
    s = runner.settings
    result: dict = {"compiled": True, "actual_precision": runner.precision,
                    "inference_precision": s["inference_precision"], "execution_devices": s.get("execution_devices"),
                    "streams": s["streams"], "threads": s["threads"]}
    try:
        faces = embedded_faces()[:CHECK_FACES]
    except EdgeFerError as e:
        result["check_vs_onnx"] = f"skipped: {e}"
        return result
    spec = runner.info.preprocessing
    reference = batched_logits(OrtRunner.open(onnx_path), faces, spec)
    result["check_vs_onnx"] = compare_logits(reference, batched_logits(runner, faces, spec)).to_dict()
    return result


def _place(stage: Path, out: Path) -> None:
    """Move the staged build into ``out``: a rename when new, else file by file (.bin before .xml)."""
    if not out.exists():
        os.replace(stage, out)
        return
    for name in INTEL_FILES:  # a previous build's files that this one does not write would mislead
        if not (stage / name).exists():
            (out / name).unlink(missing_ok=True)
    for file in sorted(stage.iterdir(), key=lambda p: p.suffix == ".xml"):
        os.replace(file, out / file.name)


def build_intel(model: Path | str, out: Path | str, precision: str = "fp32", device: str = "CPU",
                hint: str = "LATENCY", threads: int | None = None, cache_dir: Path | None = None,
                calib: str | None = None, size: int = 512, seed: int = 0,
                log: Callable[[str], None] = lambda _msg: None) -> dict:
    """OpenVINO IR in folder ``out`` (model.xml/.bin, build.json, quantize.json for int8); returns the report."""
    import openvino as ov

    device, hint, out = device.upper(), hint.upper(), Path(out)
    check_intel_precision(device, precision)
    if hint not in HINTS:
        raise EdgeFerError(f"--hint {hint!r}: use one of {', '.join(HINTS)}")
    if not out.parent.is_dir():
        raise EdgeFerError(f"-o {out}: folder {out.parent} does not exist; create it or choose another output path")
    if (out.exists() and not out.is_dir()) or out.suffix.lower() in (".xml", ".bin", ".onnx", ".engine"):
        raise EdgeFerError(f"-o {out}: --target intel writes a folder (model.xml, model.bin, build.json); "
                           "give a folder path")
    with tempfile.TemporaryDirectory(prefix="edge-fer-build-") as work:
        onnx_path, proto, _info = load_source(Path(model), Path(work), log)
        if is_quantized(proto):
            raise EdgeFerError(f"{onnx_path}: already quantized; build from the float ONNX of edge-fer export "
                               "(--precision int8 quantizes it with NNCF)")
        onnx_sha = sha256_file(onnx_path)
        report: dict = {"target": "intel", "source": str(model), "source_onnx_sha256": onnx_sha,
                        "openvino_version": ov.get_version(), "device": device, "requested_precision": precision,
                        "performance_hint": hint, "threads_requested": threads,
                        "cache_dir": str(cache_dir) if cache_dir else None}
        with staging_dir(out) as stage:
            xml = stage / "model.xml"
            provenance = {"edge_fer.source_onnx_sha256": onnx_sha}
            if precision == "int8":
                from edge_fer.quantize.run import quantize

                images, desc = calibration_images(calib, size, seed, log)
                quantized = quantize(onnx_path, xml, images, target="intel", calibration=desc, log=log)
                # quantized in the staging folder: the report names the file where it ends up
                (stage / "model.json").unlink()
                write_json(stage / "quantize.json", {**quantized, "output": str(out / "model.xml")})
                _stamp_ir(xml, provenance)
                report["calibration"] = desc
                report["float_vs_int8_heldout"] = quantized.get("float_vs_int8_heldout")
            else:
                log("converting to OpenVINO IR")
                build_intel_float(onnx_path, xml, precision, provenance)
            log(f"compiling for {device}")
            report.update(_compile(xml, onnx_path, precision, device, hint, threads, cache_dir))
            actual = report.get("actual_precision")
            if actual and actual != precision:
                report["warning"] = (f"requested {precision}, but {device} computes in {actual} "
                                     f"(inference precision {report['inference_precision']}): this hardware has no "
                                     f"{precision} support, so {actual} is what runs")
            report["files"] = sorted([*(p.name for p in stage.iterdir()), "build.json"])
            write_json(stage / "build.json", report)
            _place(stage, out)
    report["output"] = str(out)
    return report


# ----------------------------------------------------------------------------- jetson


def _jetson_onnx(onnx_path: Path, proto: onnx.ModelProto, info: ModelInfo, settings: EngineSettings, flavor: Flavor,
                 work: Path, calib: str | None, size: int, seed: int,
                 log) -> tuple[Path, dict | None, list, dict | None]:
    """(ONNX for TensorRT, quantize report, implicit-calibration batches, calibration description)."""
    from edge_fer.quantize.run import check_tensorrt_qdq, quantize

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
    report = quantize(onnx_path, qdq, images, target="jetson", calibration=desc, log=log)
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
