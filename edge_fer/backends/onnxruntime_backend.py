"""ONNX Runtime backend (CPU execution provider): fp32 and QDQ INT8 ONNX models."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.backends.base import RunnerFields


def session_options(threads: int | None, simulate_int8: bool = False) -> ort.SessionOptions:
    """Full graph optimisation, and worker threads that sleep instead of spinning between runs.

    ``simulate_int8`` turns graph optimisation off, so Quantize/DequantizeLinear run as float
    ops instead of being fused into ORT's int8 kernels: the exact int8 arithmetic of a
    runtime that accumulates in int32 (TensorRT).  ORT's x86 kernels without VNNI sum
    u8 x s8 pairs in saturating int16, which full-range 8-bit weights overflow: measured on
    the reference model's TensorRT QDQ (AVX2 host), 52.5% top-1 agreement with float through
    ORT's kernels, 88.3% simulated.

    ORT's intra-op workers spin after each run by default.  In edge-fer ORT shares
    the process with other runtimes (bench times torch, OpenVINO and ORT side by
    side) or with the face detector (predict), and spinning workers steal the cores
    those need: measured here (2 cores), torch eager went from 74 to 30 ms and
    OpenVINO fp32 from 16 to 11 ms when run after ORT, while ORT itself stayed at ~10 ms.
    """
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if simulate_int8
                                     else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def _session(path: Path | str, threads: int | None, simulate_int8: bool) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), session_options(threads, simulate_int8),
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own Fail/InvalidGraph types
        raise EdgeFerError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]}); "
                           "re-export with edge-fer export") from e


@dataclass
class OrtRunner(RunnerFields):
    session: ort.InferenceSession
    backend: str = field(default="onnxruntime", kw_only=True)

    @classmethod
    def open(cls, path: Path | str, threads: int | None = None, info: ModelInfo | None = None,
             simulate_int8: bool | None = None) -> OrtRunner:
        """``simulate_int8`` None: simulate where the artifact says it was quantized for TensorRT (jetson).

        The metadata comes from the session itself; only a jetson artifact opened without an
        explicit choice costs a second session (no separate parse of the ONNX file).
        """
        session = _session(path, threads, bool(simulate_int8))
        props = session.get_modelmeta().custom_metadata_map
        if simulate_int8 is None and props.get("edge_fer.quant_target") == "jetson":
            simulate_int8 = True
            session = _session(path, threads, True)
        info = info or ModelInfo.from_strings(props, str(path))
        info.check_shapes(session.get_inputs()[0].shape, session.get_outputs()[0].shape, str(path))
        precision = props.get("edge_fer.precision", "fp32")
        settings = {"threads": threads or "default", "spinning": False, "providers": session.get_providers()}
        if simulate_int8:
            settings["int8"] = "simulated: Q/DQ as float ops (TensorRT's int32-accumulation numerics)"
        return cls(session, info=info, precision=precision, settings=settings)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        model_input = self.session.get_inputs()[0]
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if model_input.shape[0] == 1 and len(batch) > 1:  # static batch-1 graph: one image at a time
            return np.concatenate([self(batch[i:i + 1]) for i in range(len(batch))])
        return self.session.run(None, {model_input.name: batch})[0]
