"""edge-fer predict: photos, blank images, videos, FER crops, corrupt files and bad inputs; torch, ONNX, OpenVINO."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import FER_CLASSES as CLASSES
from typer.testing import CliRunner

from edge_fer.artifacts.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edge_fer.build.openvino import build_intel_float
from edge_fer.cli import app
from edge_fer.data.faces import embedded_faces
from edge_fer.data.preprocessing import Preprocessing
from edge_fer.export.onnx_export import export_checkpoint
from edge_fer.model.fernet import FERNet, FERNetConfig

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = FERNet(FERNetConfig(num_classes=8, img_size=64, width=0.25))
    weights = save_checkpoint(Checkpoint(model, CLASSES, Preprocessing(64)), root / "ckpt")
    onnx_path = root / "model.onnx"
    export_checkpoint(load_checkpoint(weights), onnx_path, embedded_faces()[:8])
    xml = build_intel_float(onnx_path, root / "model.xml")
    return {"torch": weights, "onnx": onnx_path, "openvino": xml}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def run(*args: str):
    return CliRunner().invoke(app, ["predict", *map(str, args)])


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_photo_faces_annotated(engines, astronaut, tmp_path, backend):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut)
    out = tmp_path / "out"
    result = run(photo, "--engine", engines[backend], "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "predictions.json").read_text())
    assert report["backend"] == {"torch": "torch", "onnx": "onnxruntime", "openvino": "openvino"}[backend]
    faces = report["results"]
    assert len(faces) >= 1
    face = faces[0]
    assert face["file"] == str(photo) and face["frame"] is None
    x, y, w, h = face["box"]
    assert w >= 40 and h >= 40 and 0 <= x < 512 and 0 <= y < 512
    assert set(face["probabilities"]) == set(CLASSES)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    annotated = cv2.imread(str(out / "astronaut.png"))
    assert annotated.shape == astronaut.shape and not np.array_equal(annotated, astronaut)
    assert json.loads(result.stdout)["results"] == faces  # --json prints the same report to stdout


def test_blank_image_has_no_face(engines, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 400, 3), 128, np.uint8))
    out = tmp_path / "out"
    result = run(blank, "--engine", engines["torch"], "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "predictions.json").read_text())
    assert report["results"] == [] and report["no_face"] == [{"file": str(blank), "frame": None}]
    assert "no face" in result.output


def test_video_per_frame_results_and_timing(engines, astronaut, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (512, 512))
    assert writer.isOpened()
    for i in range(5):
        writer.write(np.roll(astronaut, 4 * i, axis=1))
    writer.release()
    out = tmp_path / "out"
    result = run(video, "--engine", engines["onnx"], "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "predictions.json").read_text())
    (summary,) = report["videos"]
    assert summary["frames"] == 5 and summary["fps"] > 0
    assert all(summary["stage_ms_median"][k] > 0 for k in ("decode", "detect", "classify"))
    assert {r["frame"] for r in report["results"]} == set(range(5))
    assert all(r["file"] == str(video) for r in report["results"])
    cap = cv2.VideoCapture(str(out / "clip.annotated.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()


def test_fer_crop_whole_image_fallback(engines, fer_mini):
    crop = sorted((fer_mini / "test" / "happy").glob("*.png"))[0]
    assert cv2.imread(str(crop), cv2.IMREAD_UNCHANGED).shape[:2] == (48, 48)
    result = run(crop, "--engine", engines["torch"], "--json")
    assert result.exit_code == 0, result.output
    (face,) = json.loads(result.stdout)["results"]
    assert face["box"] == [0, 0, 48, 48] and face["label"] in CLASSES


def test_corrupt_image_in_folder_skipped_and_counted(engines, astronaut, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "sub" / "small.png"), cv2.resize(astronaut, (256, 256)))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    out = tmp_path / "out"
    result = run(folder, "--engine", engines["torch"], "--out", out, "--no-detect")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "predictions.json").read_text())
    assert report["unreadable"] == {"count": 1, "files": [str(folder / "broken.png")]}
    assert report["images"] == 1 and len(report["results"]) == 1
    assert report["results"][0]["box"] == [0, 0, 256, 256]  # --no-detect: the whole image is the face
    assert (out / "photos" / "sub" / "small.png").is_file()
    assert "1 unreadable image skipped" in result.output


def test_text_file_is_one_line_error(engines, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = run(notes, "--engine", engines["torch"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "notes.txt" in lines[0] and "not an image or video" in lines[0]
    missing = run(tmp_path / "nope.jpg", "--engine", engines["torch"])
    assert missing.exit_code == 1 and "nope.jpg: no such file" in missing.output


def test_missing_yunet_model_is_one_line_error(engines, tmp_path):
    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), np.zeros((200, 200, 3), np.uint8))
    result = run(photo, "--engine", engines["torch"], "--yunet", tmp_path / "yunet.onnx")
    assert result.exit_code == 1 and "yunet.onnx: YuNet model not found" in result.output


def test_margin_crop_is_clipped_to_the_image():
    from edge_fer.predict.faces import crop, expand_box

    assert expand_box((10, 10, 50, 50), 0.2, 100, 100) == (0, 0, 70, 70)
    assert expand_box((40, 40, 50, 50), 0.2, 100, 100) == (30, 30, 70, 70)
    assert crop(np.zeros((100, 120), np.uint8), (100, 80, 20, 20)).shape == (24, 24)
