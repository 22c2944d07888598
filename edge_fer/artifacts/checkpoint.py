"""Checkpoints: ``model.safetensors`` (weights) + ``model.json`` (everything else).

Nothing is ever unpickled: safetensors holds only tensors, JSON only data, so
loading a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from edge_fer import __version__
from edge_fer.artifacts import schema
from edge_fer.artifacts.atomic import atomic_path, write_json
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.data.preprocessing import Preprocessing
from edge_fer.model.fernet import FERNet, FERNetConfig

FORMAT = "edge-fer-checkpoint/1"


@dataclass
class Checkpoint:
    """A model with the metadata every later stage needs (classes, preprocessing, provenance)."""

    model: FERNet
    classes: list[str]
    preprocessing: Preprocessing
    extra: dict = field(default_factory=dict)
    path: Path | None = None
    _sha256: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def config(self) -> FERNetConfig:
        return self.model.config

    def sha256(self) -> str:
        """sha256 of the weights file ('' for a model never saved), hashed once however many stages ask."""
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path) if self.path else ""
        return self._sha256

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


def read_metadata(path: Path, what: str) -> dict:
    """A JSON metadata file as a dict: size-capped and UTF-8 checked before parsing (one-line errors)."""
    size = path.stat().st_size
    if size > schema.MAX_METADATA_BYTES:
        raise EdgeFerError(f"{path}: {size / 1e6:.0f} MB is far too large for {what}; "
                           "give the file written by edge-fer")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgeFerError(f"{path}: not valid JSON ({e}); give the {what} written by edge-fer") from None
    if not isinstance(meta, dict):
        raise EdgeFerError(f"{path}: expected a JSON object; give the {what} written by edge-fer")
    return meta


def _weight_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the safetensors header alone (nothing is loaded)."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise EdgeFerError(f"{weights}: unreadable safetensors file ({str(e).splitlines()[0][:200]}); "
                           "re-export or re-train it") from None


def _expected_shapes(config: FERNetConfig, where: Path) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes ``config`` builds, from a network on the meta device (no memory allocated)."""
    try:
        with torch.device("meta"):
            skeleton = FERNet(config)
    except Exception as e:  # e.g. a reduction that leaves an attention block with 0 channels
        raise EdgeFerError(f"{where}: the architecture cannot be built ({str(e).splitlines()[0][:200]}); "
                           "re-save it with edge-fer train") from None
    shapes = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    params = sum(math.prod(s) for s in shapes.values())
    if params > schema.MAX_PARAMETERS:
        raise EdgeFerError(f"{where}: the architecture has {params / 1e6:.0f} M parameters (limit "
                           f"{schema.MAX_PARAMETERS / 1e6:.0f} M); this is not a FERNet checkpoint")
    return shapes


def load_checkpoint(path: Path | str, sha256: str | None = None) -> Checkpoint:
    """Load a checkpoint; everything is checked before the network is built.

    ``sha256``: the weights' hash where the caller has already computed it (bench keys its cache on it).

    Order matters for hostile files: the metadata against :mod:`edge_fer.artifacts.schema`, then
    the weight shapes in the safetensors header against a meta-device network, and only
    then allocation and loading, so a mismatch never costs more than the header.
    """
    weights = weights_path(path)
    meta_path = weights.with_suffix(".json")
    for p in (weights, meta_path):
        if not p.is_file():
            raise EdgeFerError(f"{p}: not found; a checkpoint is model.safetensors + model.json (from edge-fer train)")
    meta = read_metadata(meta_path, "checkpoint metadata (model.json)")
    try:
        for key in ("architecture", "classes", "preprocessing"):
            if key not in meta:
                raise schema.SchemaError(f"{key}: missing")
        config = schema.architecture(meta["architecture"])
        classes = schema.classes(meta["classes"])
        pre = schema.preprocessing(meta["preprocessing"])
        schema.extra(meta)
    except schema.SchemaError as e:
        raise EdgeFerError(f"{meta_path}: invalid checkpoint metadata ({e}); re-save it with edge-fer train") from None
    if len(classes) != config.num_classes:
        raise EdgeFerError(f"{meta_path}: {len(classes)} classes listed but architecture has {config.num_classes}")
    expected = _expected_shapes(config, meta_path)
    found = _weight_shapes(weights)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    bad_shape = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or bad_shape:
        raise EdgeFerError(
            f"{weights}: weights do not match the architecture in {meta_path.name} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {bad_shape[:3]})"
        )
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise EdgeFerError(f"{weights}: unreadable safetensors file ({e}); re-export or re-train it") from e
    model = FERNet(config)
    model.load_state_dict(state)
    model.eval()
    extra = {k: v for k, v in meta.items()
             if k not in {"format", "edge_fer_version", "architecture", "classes", "preprocessing"}}
    ckpt = Checkpoint(model, classes, pre, extra, weights)
    ckpt._sha256 = sha256
    return ckpt


def describe(path: Path, ckpt: Checkpoint) -> list[str]:
    """``edge-fer info``: the model in use and its model-card summary (classes, accuracy, training)."""
    cfg = ckpt.config
    params = sum(p.numel() for p in ckpt.model.parameters())
    lines = [f"model      {path}",
             f"arch       FERNet width {cfg.width}, attention {cfg.attention}, {cfg.head} head, neck {cfg.neck}, "
             f"input {cfg.img_size}px, {params / 1e6:.2f} M parameters"
             + (", averages each face with its mirror image" if cfg.mirror_average else ""),
             f"classes    {', '.join(ckpt.classes)}"]
    metrics = ckpt.extra.get("metrics", {})
    for split in ("test", "val", "fer_mini_test"):
        if split in metrics:
            m = metrics[split]
            macro = f", macro recall {m['macro_recall']:.2%}" if "macro_recall" in m else ""
            lines.append(f"{split:<10} accuracy {m.get('accuracy', float('nan')):.2%}{macro} (n={m.get('n', '?')})")
    training = ckpt.extra.get("training", {})
    if training:
        lines.append(f"trained    {training.get('command', '')}  ({training.get('wall_time_s', 0) / 60:.0f} min "
                     f"on {training.get('machine', {}).get('cpu', '?')})")
    card = path.parent.parent / "README.md"
    return lines + ([f"card       {card}"] if card.is_file() else [])
