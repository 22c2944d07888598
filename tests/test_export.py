"""ONNX export: opset, metadata, input size, and verification that catches a broken graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from edge_fer.backends import open_runner
from edge_fer.backends.torch_backend import TorchRunner
from edge_fer.checkpoint import load_checkpoint
from edge_fer.data.faces import embedded_faces
from edge_fer.errors import EdgeFerError
from edge_fer.export import export_checkpoint, save_onnx, verify


def test_export_is_opset_17_with_metadata_and_runs_at_its_size(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    cmp = export_checkpoint(load_checkpoint(tiny_checkpoint), out, embedded_faces())
    assert cmp.n == 100 and cmp.max_abs < 1e-3 and cmp.top1_agreement == 1.0
    model = onnx.load(str(out))
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 17
    assert [i.name for i in model.graph.input] == ["images"] and [o.name for o in model.graph.output] == ["logits"]
    runner = open_runner(out)
    assert runner.info.img_size == 64 and len(runner.info.classes) == 8 and len(runner.info.source_sha256) == 64
    session = ort.InferenceSession(str(out))
    assert session.run(None, {"images": np.zeros((3, 3, 64, 64), np.float32)})[0].shape == (3, 8)
    assert not list(tmp_path.glob("*.data"))  # weights inside the one file


def test_static_batch_and_other_size(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "m96.onnx"
    export_checkpoint(load_checkpoint(tiny_checkpoint), out, embedded_faces()[:8], dynamic_batch=False, img_size=96)
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 96, 96]


def test_broken_graph_fails_verification(tiny_checkpoint: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.onnx"
    ckpt = load_checkpoint(tiny_checkpoint)
    export_checkpoint(ckpt, good, embedded_faces())
    model = onnx.load(str(good))
    stem_weight = next(n for n in model.graph.node if n.op_type == "Conv").input[1]
    init = next(i for i in model.graph.initializer if i.name == stem_weight)
    weights = numpy_helper.to_array(init)
    noise = np.random.default_rng(0).normal(0, weights.std(), weights.shape).astype(weights.dtype)
    init.CopyFrom(numpy_helper.from_array(noise, init.name))
    broken = tmp_path / "broken.onnx"
    save_onnx(model, broken)
    with pytest.raises(EdgeFerError, match="differs from PyTorch"):
        verify(TorchRunner.from_checkpoint(ckpt), broken, embedded_faces(), 1e-3)


def test_failed_export_leaves_no_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(EdgeFerError):
        export_checkpoint(load_checkpoint(tiny_checkpoint), out / "m.onnx", embedded_faces(), tolerance=-1)
    assert list(out.iterdir()) == []
    with pytest.raises(EdgeFerError, match="does not exist"):
        export_checkpoint(load_checkpoint(tiny_checkpoint), tmp_path / "no" / "m.onnx", embedded_faces())
