"""ONNX export: opset, metadata, input size, and verification that catches a broken graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from edge_fer.artifacts.checkpoint import load_checkpoint
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.backends import open_runner
from edge_fer.backends.torch_backend import TorchRunner
from edge_fer.data.faces import embedded_faces
from edge_fer.export.onnx_export import ExportOptions, export_checkpoint, verify
from edge_fer.export.onnx_io import save_onnx


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
    export_checkpoint(load_checkpoint(tiny_checkpoint), out, embedded_faces()[:8],
                      ExportOptions(dynamic_batch=False, img_size=96))
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
        export_checkpoint(load_checkpoint(tiny_checkpoint), out / "m.onnx", embedded_faces(),
                          ExportOptions(tolerance=-1))
    assert list(out.iterdir()) == []
    with pytest.raises(EdgeFerError, match="does not exist"):
        export_checkpoint(load_checkpoint(tiny_checkpoint), tmp_path / "no" / "m.onnx", embedded_faces())


def test_bn_neck_linear_head_exports_as_one_gemm_with_parity(tmp_path: Path) -> None:
    """The v2 head (BatchNorm1d neck + linear FC) folds into one Gemm and matches PyTorch at its size."""
    import torch

    from edge_fer.artifacts.checkpoint import Checkpoint, save_checkpoint
    from edge_fer.data.preprocessing import Preprocessing
    from edge_fer.model.fernet import FERNet, FERNetConfig

    torch.manual_seed(0)
    model = FERNet(FERNetConfig(num_classes=8, img_size=64, width=0.25, head="linear", neck="bn"))
    with torch.no_grad():  # non-trivial running statistics, as after training
        model.neck.running_mean.uniform_(-1, 1)
        model.neck.running_var.uniform_(0.5, 2.0)
        model.neck.weight.uniform_(0.5, 1.5)
        model.neck.bias.uniform_(-0.5, 0.5)
    classes = ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    save_checkpoint(Checkpoint(model, classes, Preprocessing(64)), tmp_path / "ckpt")
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.config.head == "linear" and ckpt.config.neck == "bn"
    cmp = export_checkpoint(ckpt, tmp_path / "m.onnx", embedded_faces())
    assert cmp.max_abs < 1e-3 and cmp.top1_agreement == 1.0
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert "BatchNormalization" not in ops and ops[-1] == "Gemm"
    eval_logits = model.eval()(torch.randn(2, 3, 64, 64))
    train_mode_logits = model.head(model.neck.eval()(model.embed(torch.zeros(1, 3, 64, 64))))
    assert eval_logits.shape == (2, 8) and train_mode_logits.shape == (1, 8)
