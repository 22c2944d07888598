"""Device engines (``edge-fer build``): OpenVINO IR for Intel.

Float IRs are converted from the verified ONNX and saved with
``compress_to_fp16=False``, so an "fp32" IR really holds fp32 weights; the
precision it *computes* in is chosen when it is compiled (see
:mod:`edge_fer.backends.openvino_backend`), and recorded in its rt_info.
INT8 IRs come from :func:`edge_fer.quantize.quantize` (NNCF).
"""

from __future__ import annotations

from pathlib import Path

from edge_fer.errors import EdgeFerError

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


def build_intel_float(onnx_path: Path | str, out_xml: Path | str, precision: str = "fp32") -> Path:
    """ONNX -> OpenVINO IR (xml+bin) with the ONNX's edge-fer metadata in rt_info."""
    import openvino as ov

    from edge_fer.backends.onnxruntime_backend import OrtRunner
    from edge_fer.quantize import save_ir

    info = OrtRunner.open(onnx_path).info
    model = ov.convert_model(str(onnx_path))
    props = {**info.to_strings(), "edge_fer.precision": precision}
    out_xml = Path(out_xml)
    save_ir(model, out_xml, props)
    return out_xml
