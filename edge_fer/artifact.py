"""Metadata carried by every artifact (ONNX ``metadata_props``, OpenVINO ``rt_info``, engine sidecar).

An artifact without it cannot be preprocessed correctly, so every stage writes
it and every runner reads it back: classes in order, the preprocessing, the
input size and the sha256 of the checkpoint it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edge_fer import __version__
from edge_fer.data.preprocessing import Preprocessing
from edge_fer.errors import EdgeFerError

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
        """Parse :meth:`to_strings` output; ``where`` names the file in the error."""
        try:
            classes = json.loads(props["edge_fer.classes"])
            pre = Preprocessing.from_dict(json.loads(props["edge_fer.preprocessing"]))
        except (KeyError, ValueError, TypeError) as e:
            raise EdgeFerError(
                f"{where}: no edge-fer metadata (class names, preprocessing); export it with edge-fer export, "
                "or pass --classes and --img-size by hand"
            ) from e
        extra = {k.removeprefix("edge_fer."): v for k, v in props.items()
                 if k.startswith("edge_fer.") and k not in KEYS}
        return cls(classes, pre, props.get("edge_fer.source_sha256", ""), props.get("edge_fer.version", ""), extra)

    @classmethod
    def by_hand(cls, classes: str, img_size: int) -> ModelInfo:
        """Metadata given on the command line (``--classes a,b,c --img-size 224``) for foreign models."""
        names = [c.strip() for c in classes.split(",") if c.strip()]
        if len(names) < 2:
            raise EdgeFerError(f"--classes {classes!r}: give at least two comma-separated class names")
        return cls(names, Preprocessing(img_size=img_size), extra={"metadata": "given by hand"})


def artifact_bytes(path: Path) -> int:
    """Size on disk of what a backend loads (an OpenVINO IR is its .xml plus .bin)."""
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    return sum(f.stat().st_size for f in files if f.is_file())
