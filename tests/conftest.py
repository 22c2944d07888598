"""Shared fixtures: the real data in ../shared (skipped locally if absent, required in CI), the FER+ class
list and the tiny random-weight models most tests run on.

Tests mirror the package (tests/quantize/ for edge_fer/quantize/, ...); every test file has a unique name,
and this folder is on sys.path (pytest inserts a rootdir conftest's folder), so ``from conftest import
FER_CLASSES`` and ``from fakes import fake_tensorrt`` work from any subfolder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edge_fer.artifacts.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edge_fer.data.faces import embedded_faces
from edge_fer.data.preprocessing import Preprocessing
from edge_fer.export.onnx_export import export_checkpoint
from edge_fer.model.fernet import FERNet, FERNetConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FER_CLASSES = ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def shared_dataset(name: str) -> Path:
    """Path to ../shared/data/NAME; skip when absent, except in CI where it must be there."""
    path = SHARED_DATA / name
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing in CI; CI must run with ../shared beside the checkout")
        pytest.skip(f"{path} not present (real FER data lives in ../shared, never in the repo)")
    return path


@pytest.fixture(scope="session")
def fer_mini() -> Path:
    return shared_dataset("fer-mini")


@pytest.fixture(scope="session")
def ferplus() -> Path:
    return shared_dataset("ferplus")


@pytest.fixture()
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A random-weight, small (width 0.25, 64 px) 8-class checkpoint folder."""
    model = FERNet(FERNetConfig(num_classes=8, img_size=64, width=0.25))
    save_checkpoint(Checkpoint(model, FER_CLASSES, Preprocessing(64)), tmp_path / "ckpt")
    return tmp_path / "ckpt"


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    """A tiny random-weight model (seed 0, width 0.25, 64 px, FER+ classes) exported to ONNX, one per test module."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    save_checkpoint(Checkpoint(FERNet(FERNetConfig(num_classes=8, img_size=64, width=0.25)), FER_CLASSES,
                               Preprocessing(64)), folder / "ckpt")
    export_checkpoint(load_checkpoint(folder / "ckpt"), folder / "model.onnx", embedded_faces()[:16])
    return folder / "model.onnx"


def damage_onnx(path: Path) -> onnx.ModelProto:
    """Negate ``path``'s biases and scales and save it: a model that still runs but disagrees with float, for
    tests that the parity gate catches it. Returns the damaged model."""
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.ndim == 1 and w.size > 8:  # biases and scales
            init.CopyFrom(numpy_helper.from_array(-w, init.name))
    onnx.save_model(model, str(path))
    return model
