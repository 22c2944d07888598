"""Mirror averaging (``FERNetConfig.mirror_average``): one graph that averages a face and its mirror image,
exported with parity, and quantized by every target's recipe with the two views' plumbing kept float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import FER_CLASSES

from edge_fer.artifacts.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edge_fer.data.dataset import SkipReport
from edge_fer.data.faces import embedded_faces
from edge_fer.data.preprocessing import Preprocessing, preprocess
from edge_fer.export.onnx_export import export_checkpoint
from edge_fer.model.fernet import FERNet, FERNetConfig, count_macs
from edge_fer.quantize.calibration import load_calibration
from edge_fer.quantize.exclude import mirror_nodes
from edge_fer.quantize.options import QuantizeOptions
from edge_fer.quantize.ort import input_convs
from edge_fer.quantize.run import quantize
from edge_fer.quantize.tensorrt_qdq import check_tensorrt_qdq, spatial_attention_convs


def _model() -> FERNet:
    torch.manual_seed(0)
    return FERNet(FERNetConfig(num_classes=8, img_size=64, width=0.25, mirror_average=True)).eval()


@pytest.fixture(scope="module")
def mirror_onnx(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mirror")
    save_checkpoint(Checkpoint(_model(), FER_CLASSES, Preprocessing(64)), folder / "ckpt")
    cmp = export_checkpoint(load_checkpoint(folder / "ckpt"), folder / "model.onnx", embedded_faces()[:16])
    assert cmp.max_abs < 1e-3 and cmp.top1_agreement == 1.0  # torch vs ONNX at the model's size
    return folder / "model.onnx"


@pytest.fixture(scope="module")
def calib(fer_mini):
    return load_calibration(str(fer_mini / "val"), 40, 0, SkipReport())


def _quantize(src: Path, out: Path, calib, target: str) -> dict:
    images, desc = calib
    return quantize(src, out, images, QuantizeOptions(target=target), calibration=desc)


def test_eval_averages_the_two_views_and_training_runs_one() -> None:
    from dataclasses import replace

    model = _model()
    single = FERNet(replace(model.config, mirror_average=False)).eval()
    single.load_state_dict(model.state_dict())
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), (single(x) + single(x.flip(3))) / 2, atol=1e-5)
        model.train()
        single.train()
        torch.manual_seed(1)
        assert torch.allclose(model(x), single(x), atol=1e-5)  # training runs one view, as given
    assert count_macs(model) == 2 * count_macs(single)


def test_graph_names_the_mirror_nodes_and_the_stem(mirror_onnx: Path, tiny_onnx: Path) -> None:
    proto = onnx.load(str(mirror_onnx))
    ops = {n.name: n.op_type for n in proto.graph.node}
    assert [ops[n] for n in mirror_nodes(proto)] == ["Slice", "Concat", "Reshape", "ReduceMean"]
    assert len(input_convs(proto)) == 1 and "stem" in input_convs(proto)[0]
    assert len(spatial_attention_convs(proto)) == 4  # the stem reads a batch Concat: it is no attention gate
    assert mirror_nodes(onnx.load(str(tiny_onnx))) == []


@pytest.mark.parametrize("target", ["cpu", "jetson"])
def test_ort_targets_keep_the_views_and_the_stem_as_their_recipe_says(mirror_onnx, calib, tmp_path, target) -> None:
    report = _quantize(mirror_onnx, tmp_path / "q.onnx", calib, target)
    proto = onnx.load(str(tmp_path / "q.onnx"))
    float_nodes = {k["node"] for k in report[f"{target}_float"]}
    assert set(mirror_nodes(onnx.load(str(mirror_onnx)))) <= float_nodes
    producer = {o: n for n in proto.graph.node for o in n.output}
    stem = next(n for n in proto.graph.node if n.op_type == "Conv")
    stem_quantized = producer[stem.input[0]].op_type == "DequantizeLinear"
    assert stem_quantized == (target == "jetson")  # cpu keeps its input layer float, through the mirror
    assert producer[proto.graph.output[0].name].op_type == "ReduceMean"
    if target == "jetson":
        assert check_tensorrt_qdq(proto) == [] and len(spatial_attention_convs(proto)) == 4


def test_intel_keeps_the_logit_average_float(mirror_onnx, calib, tmp_path) -> None:
    import openvino as ov

    _quantize(mirror_onnx, tmp_path / "q.xml", calib, "intel")
    model = ov.Core().read_model(str(tmp_path / "q.xml"))
    mean = model.output(0).get_node().input_value(0).get_node()
    assert mean.get_type_name() == "ReduceMean"
    reshape = mean.input_value(0).get_node()
    assert reshape.input_value(0).get_node().get_type_name() != "FakeQuantize"
    stem = next(op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution")
    assert stem.input_value(0).get_node().get_type_name() == "FakeQuantize"  # the stacked views, quantized once


def test_qat_simulation_runs_the_mirror_graph_like_onnx_runtime(mirror_onnx, calib, tmp_path) -> None:
    """QAT trains the deployed QDQ graph as a PyTorch module: its Slice(step -1) must mirror like ORT's."""
    from edge_fer.backends.onnxruntime_backend import OrtRunner
    from edge_fer.quantize.onnx_torch import OnnxModule

    _quantize(mirror_onnx, tmp_path / "q.onnx", calib, "jetson")
    x = preprocess(embedded_faces()[:8], Preprocessing(64))
    runtime = OrtRunner.open(tmp_path / "q.onnx", simulate_int8=True)(x)
    with torch.no_grad():
        sim = OnnxModule(onnx.load(str(tmp_path / "q.onnx"))).eval()(torch.from_numpy(x)).numpy()
    assert np.abs(runtime - sim).max() < 0.05
