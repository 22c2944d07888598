"""ONNX Runtime backend (CPU execution provider): fp32 and QDQ INT8 ONNX models."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_fer.artifact import ModelInfo
from edge_fer.errors import EdgeFerError


def session_options(threads: int | None) -> ort.SessionOptions:
    """Full graph optimisation, and worker threads that sleep instead of spinning between runs.

    ORT's intra-op workers spin after each run by default.  In edge-fer ORT shares
    the process with other runtimes (bench times torch, OpenVINO and ORT side by
    side) or with the face detector (predict), and spinning workers steal the cores
    those need: measured here (2 cores), torch eager went from 74 to 30 ms and
    OpenVINO fp32 from 16 to 11 ms when run after ORT, while ORT itself stayed at ~10 ms.
    """
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


@dataclass
class OrtRunner:
    session: ort.InferenceSession
    info: ModelInfo
    precision: str
    backend: str = "onnxruntime"
    settings: dict = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path | str, threads: int | None = None, info: ModelInfo | None = None) -> OrtRunner:
        try:
            session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types
            raise EdgeFerError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]}); "
                               "re-export with edge-fer export") from e
        props = session.get_modelmeta().custom_metadata_map
        info = info or ModelInfo.from_strings(props, str(path))
        precision = props.get("edge_fer.precision", "fp32")
        return cls(session, info, precision, settings={"threads": threads or "default", "spinning": False,
                                                       "providers": session.get_providers()})

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        model_input = self.session.get_inputs()[0]
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if model_input.shape[0] == 1 and len(batch) > 1:  # static batch-1 graph: one image at a time
            return np.concatenate([self(batch[i:i + 1]) for i in range(len(batch))])
        return self.session.run(None, {model_input.name: batch})[0]
