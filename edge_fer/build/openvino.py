"""OpenVINO IR for Intel (``edge-fer build --target intel``).

Float IRs are converted from the verified ONNX and saved with
``compress_to_fp16=False``, so an "fp32" IR really holds fp32 weights; the
precision it *computes* in is chosen when it is compiled (see
:mod:`edge_fer.backends.openvino_backend`), and recorded in its rt_info.
INT8 IRs come from :func:`edge_fer.quantize.run.quantize` (NNCF).  The build compiles
the IR on the requested device and writes ``build.json``: requested vs actual
precision, hint, streams, threads, and a parity check against ONNX Runtime."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_fer.artifacts.atomic import staging_dir, write_json
from edge_fer.artifacts.checkpoint import sha256_file
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.build.run import CalibrationSource, calibration_images, load_source
from edge_fer.export.onnx_io import OnnxModel, is_quantized, read_info

HINTS = ("LATENCY", "THROUGHPUT")


CHECK_FACES = 16  # embedded faces the compiled IR is compared on against ONNX Runtime


INTEL_FILES = ("model.xml", "model.bin", "build.json", "quantize.json")


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


def build_intel_float(onnx_path: Path | str, out_xml: Path | str, precision: str = "fp32",
                      extra: dict[str, str] | None = None, info: ModelInfo | None = None) -> Path:
    """ONNX -> OpenVINO IR (xml+bin) with the ONNX's edge-fer metadata (plus ``extra``) in rt_info;
    ``info``: that metadata where the caller has already read it."""
    import openvino as ov

    from edge_fer.artifacts.openvino_ir import save_ir

    info = info or read_info(onnx_path)
    model = ov.convert_model(str(onnx_path))
    props = {**info.to_strings(), "edge_fer.precision": precision, **(extra or {})}
    out_xml = Path(out_xml)
    save_ir(model, out_xml, props)
    return out_xml


def _stamp_ir(xml: Path, props: dict[str, str]) -> None:
    """Add rt_info entries to a written IR (quantize writes the INT8 IR; the build adds its provenance)."""
    import openvino as ov

    from edge_fer.artifacts.openvino_ir import save_ir

    save_ir(ov.Core().read_model(str(xml)), xml, props)


def _compile(xml: Path, source: OnnxModel, job: IntelBuild) -> dict:
    """Compile on ``job.device`` and read back what it really runs; compare with ONNX Runtime on embedded faces."""
    import openvino as ov

    from edge_fer.backends.onnxruntime_backend import OrtRunner
    from edge_fer.backends.openvino_backend import OpenVinoRunner
    from edge_fer.compare import compare_logits
    from edge_fer.data.faces import embedded_faces
    from edge_fer.train.metrics import batched_logits

    device = job.device
    available = ov.Core().available_devices  # e.g. ["CPU", "GPU.0"]; AUTO is virtual and always there
    if device != "AUTO" and not any(d.split(".")[0] == device for d in available):
        return {"compiled": False, "note": f"{device} is not present on this machine (devices: "
                f"{', '.join(available)}); the IR is device-independent: open it there to compile, the runner "
                "reads back the precision"}
    runner = OpenVinoRunner.open(xml, precision=job.precision, device=device, threads=job.threads, hint=job.hint,
                                 cache_dir=str(job.cache_dir) if job.cache_dir else None, info=source.info)
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
    reference = batched_logits(OrtRunner.open(source.path, info=source.info), faces, spec)
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


@dataclass(frozen=True)
class IntelBuild:
    """One ``--target intel`` build: the model (float ONNX or checkpoint), the output folder, what the IR is
    compiled for (precision, device, performance hint, threads, compiled-model cache) and, for int8, the
    calibration images."""

    model: Path | str
    output: Path | str
    precision: str = "fp32"
    device: str = "CPU"
    hint: str = "LATENCY"
    threads: int | None = None
    cache_dir: Path | None = None
    calibration: CalibrationSource = field(default_factory=CalibrationSource)


def build_intel(job: IntelBuild, log: Callable[[str], None] = lambda _msg: None) -> dict:
    """OpenVINO IR in folder ``job.output`` (model.xml/.bin, build.json, quantize.json for int8); returns the
    report."""
    import openvino as ov

    job = replace(job, device=job.device.upper(), hint=job.hint.upper())
    device, precision, out = job.device, job.precision, Path(job.output)
    check_intel_precision(device, precision)
    if job.hint not in HINTS:
        raise EdgeFerError(f"--hint {job.hint!r}: use one of {', '.join(HINTS)}")
    if not out.parent.is_dir():
        raise EdgeFerError(f"-o {out}: folder {out.parent} does not exist; create it or choose another output path")
    if (out.exists() and not out.is_dir()) or out.suffix.lower() in (".xml", ".bin", ".onnx", ".engine"):
        raise EdgeFerError(f"-o {out}: --target intel writes a folder (model.xml, model.bin, build.json); "
                           "give a folder path")
    with tempfile.TemporaryDirectory(prefix="edge-fer-build-") as work:
        source = load_source(Path(job.model), Path(work), log)
        if is_quantized(source.proto):
            raise EdgeFerError(f"{source.path}: already quantized; build from the float ONNX of edge-fer export "
                               "(--precision int8 quantizes it with NNCF)")
        onnx_sha = sha256_file(source.path)
        report: dict = {"target": "intel", "source": str(job.model), "source_onnx_sha256": onnx_sha,
                        "openvino_version": ov.get_version(), "device": device, "requested_precision": precision,
                        "performance_hint": job.hint, "threads_requested": job.threads,
                        "cache_dir": str(job.cache_dir) if job.cache_dir else None}
        with staging_dir(out) as stage:
            xml = stage / "model.xml"
            provenance = {"edge_fer.source_onnx_sha256": onnx_sha}
            if precision == "int8":
                from edge_fer.quantize.options import QuantizeOptions
                from edge_fer.quantize.run import quantize

                images, desc = calibration_images(job.calibration, log)
                quantized = quantize(source, xml, images, QuantizeOptions(target="intel"), calibration=desc, log=log)
                # quantized in the staging folder: the report names the file where it ends up
                (stage / "model.json").unlink()
                write_json(stage / "quantize.json", {**quantized, "output": str(out / "model.xml")})
                _stamp_ir(xml, provenance)
                report["calibration"] = desc
                report["float_vs_int8_heldout"] = quantized.get("float_vs_int8_heldout")
            else:
                log("converting to OpenVINO IR")
                build_intel_float(source.path, xml, precision, provenance, source.info)
            log(f"compiling for {device}")
            report.update(_compile(xml, source, job))
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
