"""Shared fixtures: the real data in ../shared (skipped locally if absent, required in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_fer.artifacts.checkpoint import Checkpoint, save_checkpoint
from edge_fer.data.preprocessing import Preprocessing
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
