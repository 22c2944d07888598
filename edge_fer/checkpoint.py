"""Checkpoints: ``model.safetensors`` (weights) + ``model.json`` (everything else).

Nothing is ever unpickled: safetensors holds only tensors, JSON only data, so
loading a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from edge_fer import __version__
from edge_fer.atomic import atomic_path, write_json
from edge_fer.data.preprocessing import Preprocessing
from edge_fer.errors import EdgeFerError
from edge_fer.model import FERNet, FERNetConfig

FORMAT = "edge-fer-checkpoint/1"


@dataclass
class Checkpoint:
    """A model with the metadata every later stage needs (classes, preprocessing, provenance)."""

    model: FERNet
    classes: list[str]
    preprocessing: Preprocessing
    extra: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def config(self) -> FERNetConfig:
        return self.model.config

    def metadata(self) -> dict:
        return {
            "format": FORMAT,
            "edge_fer_version": __version__,
            "architecture": self.config.to_dict(),
            "classes": self.classes,
            "preprocessing": self.preprocessing.to_dict(),
            **self.extra,
        }


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_path(path: Path | str) -> Path:
    """Accept the checkpoint folder, its ``model.safetensors`` or its ``model.json``."""
    path = Path(path)
    if path.is_dir():
        return path / "model.safetensors"
    if path.suffix == ".json":
        return path.with_suffix(".safetensors")
    return path


def save_checkpoint(ckpt: Checkpoint, folder: Path | str, state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/model.json`` atomically; returns the weights path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in (state or ckpt.model.state_dict()).items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    write_json(folder / "model.json", ckpt.metadata())
    return weights


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load a checkpoint; a metadata/weights mismatch is a clear error, never a silent partial load."""
    weights = weights_path(path)
    meta_path = weights.with_suffix(".json")
    for p in (weights, meta_path):
        if not p.is_file():
            raise EdgeFerError(f"{p}: not found; a checkpoint is model.safetensors + model.json (from edge-fer train)")
    try:
        meta = json.loads(meta_path.read_text())
        config = FERNetConfig.from_dict(meta["architecture"])
        classes = list(meta["classes"])
        pre = Preprocessing.from_dict(meta["preprocessing"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise EdgeFerError(f"{meta_path}: invalid checkpoint metadata ({e}); re-save it with edge-fer train") from e
    if len(classes) != config.num_classes:
        raise EdgeFerError(f"{meta_path}: {len(classes)} classes listed but architecture has {config.num_classes}")
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise EdgeFerError(f"{weights}: unreadable safetensors file ({e}); re-export or re-train it") from e
    model = FERNet(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or bad_shape:
        raise EdgeFerError(
            f"{weights}: weights do not match the architecture in {meta_path.name} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {bad_shape[:3]})"
        )
    model.load_state_dict(state)
    model.eval()
    extra = {k: v for k, v in meta.items()
             if k not in {"format", "edge_fer_version", "architecture", "classes", "preprocessing"}}
    return Checkpoint(model, classes, pre, extra, weights)
