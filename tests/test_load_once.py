"""Each command reads a checkpoint's metadata once and parses an artifact's metadata once (counting spies on
the two loaders, stages run in-process through the real CLI)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_fer.artifacts import checkpoint
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.cli import app


@pytest.fixture()
def reads(monkeypatch) -> Counter:
    """Calls of the checkpoint metadata reader ("checkpoint") and of the artifact metadata parser, per file."""
    counts: Counter = Counter()
    read_metadata, from_strings = checkpoint.read_metadata, ModelInfo.from_strings.__func__

    def spy_checkpoint(path, what):
        counts["checkpoint"] += 1
        return read_metadata(path, what)

    def spy_artifact(cls, props, where):
        counts[Path(where).name] += 1
        return from_strings(cls, props, where)

    monkeypatch.setattr(checkpoint, "read_metadata", spy_checkpoint)
    monkeypatch.setattr(ModelInfo, "from_strings", classmethod(spy_artifact))
    return counts


def _run(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def test_export_reads_the_checkpoint_once(tiny_checkpoint, tmp_path, reads):
    _run("export", str(tiny_checkpoint / "model.safetensors"), "-o", str(tmp_path / "m.onnx"))
    assert reads["checkpoint"] == 1 and max(reads.values()) == 1, reads


def test_quantize_reads_the_model_once(tiny_onnx, tmp_path, reads):
    _run("quantize", str(tiny_onnx), "-o", str(tmp_path / "q.onnx"))
    assert reads == {tiny_onnx.name: 1}, reads


def test_build_reads_the_model_once(tiny_onnx, tmp_path, reads):
    _run("build", str(tiny_onnx), "--target", "intel", "-o", str(tmp_path / "ir"))
    _run("build", str(tiny_onnx), "--target", "jetson", "--bundle", str(tmp_path / "bundle"))
    assert reads == {tiny_onnx.name: 2}, reads  # once per command


@pytest.mark.parametrize("target", ["intel", "jetson"])
def test_an_int8_build_reads_the_model_once(tiny_onnx, tmp_path, reads, target):
    """The build hands the model it has read to quantize (NNCF for intel, the QDQ ONNX for a jetson bundle)."""
    out = ["-o", str(tmp_path / "ir")] if target == "intel" else ["--bundle", str(tmp_path / "bundle")]
    _run("build", str(tiny_onnx), "--target", target, "--precision", "int8", *out)
    assert reads == {tiny_onnx.name: 1}, reads


def test_bench_reads_the_checkpoint_once(tiny_checkpoint, tmp_path, reads):
    _run("bench", str(tiny_checkpoint / "model.safetensors"), "--backends", "onnxruntime", "--precisions", "fp32",
         "--iters", "2", "--warmup", "1", "--min-agreement", "0", "--out", str(tmp_path / "out"),
         "--cache", str(tmp_path / "cache"))
    assert reads["checkpoint"] == 1 and max(reads.values()) == 1, reads  # each artifact's metadata once too
