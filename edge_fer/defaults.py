"""Where the shipped reference model lives, so every command works without a checkpoint argument."""

from __future__ import annotations

import os
from pathlib import Path

from edge_fer.errors import EdgeFerError

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_MODEL = REPO_ROOT / "models" / "fernet-ferplus" / "model.safetensors"


def default_checkpoint() -> Path:
    """``$EDGE_FER_MODEL`` if set, else the reference model shipped in ``models/fernet-ferplus``."""
    path = Path(os.environ.get("EDGE_FER_MODEL", REFERENCE_MODEL))
    if not path.exists():
        raise EdgeFerError(f"{path}: no default model; pass a checkpoint, set EDGE_FER_MODEL, "
                           "or train one with edge-fer train")
    return path
