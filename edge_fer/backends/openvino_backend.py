"""OpenVINO backend: IR (xml/bin) on CPU/GPU/NPU with an explicit inference precision.

On CPUs with AVX-512 BF16/AMX, OpenVINO silently computes an "f32" model in
bf16 unless told otherwise; here the precision is always set from the request
and read back from the compiled model, so reports state what really ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openvino as ov

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.backends.base import RunnerFields

# Requested precision -> INFERENCE_PRECISION_HINT for the float parts of the graph.
# INT8 IRs keep f32 for their float parts (attention, head) so INT8 is the only change vs float.
# "default" sets no hint: whatever OpenVINO picks by itself (bf16 on AVX-512 BF16/AMX CPUs), read back;
# edge-fer bench shows it as the naive baseline.
PRECISION_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32", "default": None}


def reported(compiled: ov.CompiledModel, name: str):
    """A compiled-model property, or None where the device does not report it (AUTO reports few)."""
    try:
        return compiled.get_property(name)
    except RuntimeError:
        return None


def _dims(shape) -> list[int | None]:
    """An OpenVINO partial shape as ints, None where a dimension is dynamic."""
    return [d.get_length() if d.is_static else None for d in shape]


def rt_info_strings(model: ov.Model) -> dict[str, str]:
    """The edge_fer.* entries of a model's rt_info as plain strings."""
    out = {}
    for key, value in model.get_rt_info().items():
        if str(key).startswith("edge_fer."):
            out[str(key)] = value.astype(str) if hasattr(value, "astype") else str(value)
    return out


@dataclass
class OpenVinoRunner(RunnerFields):
    compiled: ov.CompiledModel
    backend: str = field(default="openvino", kw_only=True)

    @classmethod
    def open(cls, path: Path | str, precision: str | None = None, device: str = "CPU", threads: int | None = None,
             hint: str = "LATENCY", cache_dir: str | None = None, info: ModelInfo | None = None) -> OpenVinoRunner:
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as e:
            raise EdgeFerError(f"{path}: OpenVINO cannot read it ({str(e).splitlines()[0]}); "
                               "rebuild with edge-fer build --target intel") from e
        props = rt_info_strings(model)
        info = info or ModelInfo.from_strings(props, str(path))  # given: the metadata it was just written with
        info.check_shapes(_dims(model.input(0).get_partial_shape()), _dims(model.output(0).get_partial_shape()),
                          str(path))
        weights = props.get("edge_fer.precision", "fp32")
        requested = precision or weights
        if requested not in PRECISION_HINTS:
            raise EdgeFerError(f"--precision {requested!r}: use one of {', '.join(PRECISION_HINTS)}")
        config: dict = {"PERFORMANCE_HINT": hint}
        if PRECISION_HINTS[requested]:
            config["INFERENCE_PRECISION_HINT"] = PRECISION_HINTS[requested]
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if cache_dir:
            config["CACHE_DIR"] = cache_dir
        try:
            compiled = core.compile_model(model, device, config)
        except Exception as e:
            raise EdgeFerError(f"{path}: cannot compile for {device} at {requested} "
                               f"({str(e).splitlines()[0]})") from e
        prop = reported(compiled, "INFERENCE_PRECISION_HINT")  # an ov.Type: "f32", "bf16", ...
        actual = "unreported" if prop is None else prop.to_string() if hasattr(prop, "to_string") else str(prop)
        settings = {"device": device, "performance_hint": hint, "inference_precision": actual,
                    "weights": weights, "threads": reported(compiled, "INFERENCE_NUM_THREADS"),
                    "streams": reported(compiled, "NUM_STREAMS"), "cache_dir": cache_dir or "",
                    "execution_devices": reported(compiled, "EXECUTION_DEVICES")}
        # where the device does not say (AUTO), the label is the request and inference_precision says "unreported"
        names = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "unreported": requested}
        label = "int8" if weights == "int8" else names.get(actual, actual)
        return cls(compiled, info=info, precision=label, settings=settings)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        result = self.compiled({0: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.asarray(result[self.compiled.output(0)])
