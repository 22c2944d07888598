"""Where the shipped reference model lives, so every command works without a checkpoint argument.

The model is package data (``edge_fer/models/``), found through :mod:`importlib.resources`,
so a wheel installed with ``pip install edge-fer`` has it as well as a clone does.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from edge_fer.artifacts.errors import EdgeFerError

# edge-fer is installed unzipped (safetensors memory-maps a real file), so the resource is a plain path.
MODELS = Path(str(resources.files("edge_fer") / "models"))
REFERENCE_MODEL = MODELS / "fernet-ferplus" / "model.safetensors"


def default_checkpoint() -> Path:
    """``$EDGE_FER_MODEL`` if set, else the reference model shipped in ``edge_fer/models/fernet-ferplus``."""
    path = Path(os.environ.get("EDGE_FER_MODEL", REFERENCE_MODEL))
    if not path.exists():
        raise EdgeFerError(f"{path}: no default model; pass a checkpoint, set EDGE_FER_MODEL, "
                           "or train one with edge-fer train")
    return path
