"""Metadata carried by every artifact (ONNX ``metadata_props``, OpenVINO ``rt_info``, engine sidecar).

An artifact without it cannot be preprocessed correctly, so every stage writes
it and every runner reads it back: classes in order, the preprocessing, the
input size and the sha256 of the checkpoint it came from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_fer import __version__
from edge_fer.artifacts import schema
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.data.preprocessing import Preprocessing

KEYS = ("edge_fer.classes", "edge_fer.preprocessing", "edge_fer.img_size", "edge_fer.source_sha256",
        "edge_fer.version")


@dataclass
class ModelInfo:
    """What a runner needs besides the weights: class order and preprocessing, plus provenance."""

    classes: list[str]
    preprocessing: Preprocessing
    source_sha256: str = ""
    version: str = __version__
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def img_size(self) -> int:
        return self.preprocessing.img_size

    def to_strings(self) -> dict[str, str]:
        """Flat string map, the form ONNX metadata_props and OpenVINO rt_info take."""
        return {
            "edge_fer.classes": json.dumps(self.classes),
            "edge_fer.preprocessing": json.dumps(self.preprocessing.to_dict()),
            "edge_fer.img_size": str(self.img_size),
            "edge_fer.source_sha256": self.source_sha256,
            "edge_fer.version": self.version,
            **{f"edge_fer.{k}": v for k, v in self.extra.items()},
        }

    @classmethod
    def from_strings(cls, props: dict[str, str], where: str) -> ModelInfo:
        """Parse :meth:`to_strings` output, checked against :mod:`edge_fer.artifacts.schema`; ``where`` names
        the file."""
        if "edge_fer.classes" not in props or "edge_fer.preprocessing" not in props:
            raise EdgeFerError(
                f"{where}: no edge-fer metadata (class names, preprocessing); export it with edge-fer export, "
                "or pass --classes and --img-size by hand"
            )
        try:
            if any(len(v) > schema.MAX_METADATA_BYTES for v in props.values()):
                raise schema.SchemaError("a metadata value is far too large")
            classes = schema.classes(json.loads(props["edge_fer.classes"]))
            pre = schema.preprocessing(json.loads(props["edge_fer.preprocessing"]))
            if "edge_fer.img_size" in props and props["edge_fer.img_size"] != str(pre.img_size):
                raise schema.SchemaError(f"edge_fer.img_size {props['edge_fer.img_size']!r} differs from the "
                                         f"preprocessing's {pre.img_size}")
        except (ValueError, TypeError) as e:  # JSONDecodeError and SchemaError are ValueErrors
            raise EdgeFerError(f"{where}: invalid edge-fer metadata ({e}); re-export it with edge-fer export") from None
        extra = {k.removeprefix("edge_fer."): v for k, v in props.items()
                 if k.startswith("edge_fer.") and k not in KEYS}
        return cls(classes, pre, props.get("edge_fer.source_sha256", ""), props.get("edge_fer.version", ""), extra)

    def check_shapes(self, input_shape: Sequence[object], output_shape: Sequence[object], where: str) -> None:
        """The graph must take the metadata's input size and give one logit per listed class.

        Static dimensions only (a dynamic one is a name or None, and cannot disagree).
        """
        n_out = output_shape[-1] if output_shape else None
        if isinstance(n_out, int) and n_out > 0 and n_out != len(self.classes):
            raise EdgeFerError(f"{where}: metadata lists {len(self.classes)} classes but the model has {n_out} "
                               "outputs; re-export it with edge-fer export")
        spatial = [d for d in input_shape[2:] if isinstance(d, int) and d > 0]
        if len(input_shape) != 4 or any(d != self.img_size for d in spatial):
            raise EdgeFerError(f"{where}: the model's input is {list(input_shape)}, but its metadata says "
                               f"[batch, 3, {self.img_size}, {self.img_size}]; re-export it with edge-fer export")

    @classmethod
    def by_hand(cls, classes: str, img_size: int) -> ModelInfo:
        """Metadata given on the command line (``--classes a,b,c --img-size 224``) for foreign models."""
        names = [c.strip() for c in classes.split(",") if c.strip()]
        try:
            schema.classes(names)
        except schema.SchemaError as e:
            raise EdgeFerError(f"--classes {classes!r}: {e}; give at least two distinct comma-separated "
                               "names") from None
        return cls(names, Preprocessing(img_size=img_size), extra={"metadata": "given by hand"})


def artifact_files(path: Path) -> list[Path]:
    """The files of one artifact: an OpenVINO IR is its .xml plus .bin, anything else one file."""
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def artifact_bytes(path: Path) -> int:
    """Size on disk of what a backend loads."""
    return sum(f.stat().st_size for f in artifact_files(path) if f.is_file())
