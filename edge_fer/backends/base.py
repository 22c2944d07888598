"""The runner interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge_fer.artifacts.metadata import ModelInfo


class Runner(Protocol):
    """``runner(batch) -> logits`` for NCHW float32 batches from :func:`edge_fer.data.preprocessing.preprocess`.

    ``precision`` is the precision the runtime really computes in (read back from
    it where it can say), not what was asked for; ``settings`` records threads,
    streams and other knobs for reports.
    """

    backend: str
    precision: str
    info: ModelInfo
    settings: dict

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(kw_only=True)
class RunnerFields:
    """What an ONNX Runtime or OpenVINO runner records besides its session: metadata, precision, knobs."""

    info: ModelInfo
    precision: str
    settings: dict = field(default_factory=dict)
