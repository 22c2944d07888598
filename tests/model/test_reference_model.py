"""The shipped reference model: loads, matches its metadata, and still scores what its card says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_fer.artifacts.checkpoint import load_checkpoint
from edge_fer.artifacts.defaults import REFERENCE_MODEL
from edge_fer.backends.torch_backend import TorchRunner
from edge_fer.data.dataset import SkipReport, load_images, scan_folder
from edge_fer.model.fernet import FERNetConfig
from edge_fer.train.metrics import batched_logits, compute_metrics

MODEL_224 = REFERENCE_MODEL.parents[1] / "fernet-ferplus-224" / "model.safetensors"


@pytest.mark.parametrize(("weights", "size", "mirror"), [(REFERENCE_MODEL, 64, True), (MODEL_224, 224, False)])
def test_shipped_checkpoints_are_the_seed_architecture(weights: Path, size: int, mirror: bool) -> None:
    """Both shipped models: the seed's network (width 1, CBAM), the v2 head, at their own input size; the
    default averages each face with its mirror image."""
    ckpt = load_checkpoint(weights)  # raises if weights and metadata disagree
    assert ckpt.config == FERNetConfig(num_classes=8, img_size=size, width=1.0, attention="cbam",
                                       head_scale=ckpt.config.head_scale, head="cosine", neck="bn",
                                       mirror_average=mirror)
    assert ckpt.classes == ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert ckpt.preprocessing.img_size == size
    assert weights.stat().st_size <= 16 * 2**20


def test_accuracy_on_fer_mini_test_matches_the_card(fer_mini: Path) -> None:
    meta = json.loads(REFERENCE_MODEL.with_suffix(".json").read_text())
    claimed = meta["metrics"]["fer_mini_test"]["accuracy"]
    card = (REFERENCE_MODEL.parents[1] / "README.md").read_text()
    assert f"{claimed:.1%}" in card, "the model card must quote the fer-mini figure"
    ckpt = load_checkpoint(REFERENCE_MODEL)
    folder = scan_folder(fer_mini / "test", ckpt.classes)
    images, kept = load_images(folder.paths, SkipReport())
    logits = batched_logits(TorchRunner.from_checkpoint(ckpt), images, ckpt.preprocessing, 64)
    accuracy = compute_metrics(logits, folder.labels[kept], ckpt.classes).accuracy
    assert accuracy == pytest.approx(claimed, abs=0.03)


def test_shipped_default_labels_the_astronaut_happy(tmp_path: Path) -> None:
    """Regression: the README's photo (scikit-image's astronaut, a clear smile) through `edge-fer predict`."""
    import cv2
    from typer.testing import CliRunner

    from edge_fer.cli import app

    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    result = CliRunner().invoke(app, ["predict", str(photo), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    faces = json.loads((tmp_path / "out" / "predictions.json").read_text())["results"]
    assert len(faces) == 1
    assert faces[0]["label"] == "happy" and faces[0]["p"] > 0.5
