"""PyTorch eager backend: the float reference every other backend is compared with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edge_fer.artifacts.checkpoint import Checkpoint, load_checkpoint
from edge_fer.artifacts.metadata import ModelInfo


@dataclass
class TorchRunner:
    model: torch.nn.Module
    info: ModelInfo
    device: str = "cpu"
    backend: str = "torch"
    precision: str = "fp32"
    settings: dict = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, device: str = "cpu", threads: int | None = None) -> TorchRunner:
        if threads:
            torch.set_num_threads(threads)
        sha = ckpt.sha256()
        info = ModelInfo(ckpt.classes, ckpt.preprocessing, sha)
        model = ckpt.model.to(device).eval().to(memory_format=torch.channels_last)
        return cls(model, info, device, settings={"threads": torch.get_num_threads(), "device": device,
                                                  "memory_format": "channels_last"})

    @classmethod
    def open(cls, path: Path | str, device: str = "cpu", threads: int | None = None) -> TorchRunner:
        return cls.from_checkpoint(load_checkpoint(path), device, threads)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            return self.model(x.contiguous(memory_format=torch.channels_last)).float().cpu().numpy()
