"""QAT: the ONNX graph runs in PyTorch as the runtimes run it, fine-tunes, and PTQ-then-QAT picks a path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import FER_CLASSES as CLASSES
from onnx import numpy_helper

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.backends.onnxruntime_backend import OrtRunner
from edge_fer.backends.openvino_backend import OpenVinoRunner
from edge_fer.data.dataset import SkipReport
from edge_fer.data.faces import embedded_faces
from edge_fer.data.preprocessing import Preprocessing, preprocess
from edge_fer.quantize.calibration import load_calibration
from edge_fer.quantize.onnx_torch import OnnxModule
from edge_fer.quantize.options import QuantizeOptions
from edge_fer.quantize.qat import QatOptions
from edge_fer.quantize.run import quantize
from edge_fer.quantize.tensorrt_qdq import check_tensorrt_qdq


@pytest.fixture(scope="module")
def calib(fer_mini):
    return load_calibration(str(fer_mini / "val"), 40, 0, SkipReport())


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return preprocess(embedded_faces()[:32], Preprocessing(64))


def qat_opts(fer_mini: Path, **kw) -> QatOptions:
    return QatOptions(fer_mini / "train", **{"epochs": 1, "max_images": 64, "lr": 1e-4, **kw})


def run(tiny_onnx, out, calib, **kw):
    images, desc = calib
    return quantize(tiny_onnx, out, images, QuantizeOptions(**kw), calibration=desc)


def test_float_graph_runs_like_onnx_runtime(tiny_onnx, batch):
    module = OnnxModule(onnx.load(str(tiny_onnx))).eval()
    with torch.no_grad():
        ours = module(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(ours, OrtRunner.open(tiny_onnx)(batch), atol=1e-4)


def test_qdq_graph_runs_like_its_runtime_and_round_trips(tiny_onnx, calib, batch, tmp_path):
    run(tiny_onnx, tmp_path / "cpu.onnx", calib, target="cpu")
    proto = onnx.load(str(tmp_path / "cpu.onnx"))
    module = OnnxModule(proto).eval()
    with torch.no_grad():
        ours = module(torch.from_numpy(batch)).numpy()
    simulated = OrtRunner.open(tmp_path / "cpu.onnx", simulate_int8=True)(batch)  # Q/DQ as float ops
    spread = float(np.median(simulated.max(1) - simulated.min(1)))
    assert np.abs(ours - simulated).max() < 0.05 * spread
    # untrained weights write back bit for bit: the integers the forward pass used are the PTQ ones
    for before, after in zip(proto.graph.initializer, module.to_onnx().graph.initializer, strict=True):
        assert before.data_type == after.data_type
        np.testing.assert_array_equal(numpy_helper.to_array(before), numpy_helper.to_array(after))


def test_unknown_operator_is_refused():
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Softsign", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(EdgeFerError, match="Softsign"):
        OnnxModule(onnx.helper.make_model(graph))


@pytest.mark.parametrize("target,suffix", [("cpu", ".onnx"), ("jetson", ".onnx"), ("intel", ".xml")])
def test_qat_writes_what_the_runtime_runs(tiny_onnx, calib, fer_mini, tmp_path, target, suffix):
    out = tmp_path / f"qat{suffix}"
    report = run(tiny_onnx, out, calib, target=target, qat=qat_opts(fer_mini))
    section = report["qat"]
    assert section["path"] == "qat" and section["budget"] is None
    done = section["qat"]
    assert [h["epoch"] for h in done["history"]] == [0, 1] and done["images"] == 64
    assert done["kept_epoch"] in (0, 1) and done["seconds"] > 0
    assert done["epoch_selected_on"] == "held-out calibration images" and done["held_out"] == 8
    parity = done["runtime_vs_simulation"]
    assert parity["ok"] and parity["top1_agreement"] >= 0.995, parity
    runner = OpenVinoRunner.open(out) if target == "intel" else OrtRunner.open(out)
    assert runner.info.classes == CLASSES
    if target == "jetson":
        assert check_tensorrt_qdq(onnx.load(str(out))) == []
    if target != "intel":
        assert {p.key: p.value for p in onnx.load(str(out)).metadata_props}["edge_fer.qat"] == "1"
    assert (tmp_path / "qat.json").is_file() and not list(tmp_path.glob(".*"))  # report, no leftovers


def _val(fer_mini: Path, dest: Path) -> Path:
    for sub in sorted((fer_mini / "val").iterdir()):
        (dest / sub.name).mkdir(parents=True)
        for f in sorted(sub.iterdir())[:2]:
            shutil.copy(f, dest / sub.name / f.name)
    return dest


def test_budget_runs_qat_only_where_ptq_misses(tiny_onnx, calib, fer_mini, tmp_path):
    val = _val(fer_mini, tmp_path / "val")
    met = run(tiny_onnx, tmp_path / "a.onnx", calib, target="cpu", qat=qat_opts(fer_mini), max_drop=100.0, val=val)
    assert met["qat"]["path"] == "ptq" and "qat" not in met["qat"] and met["qat"]["ptq"]["met"]
    assert "accuracy_control" not in met  # with --qat the budget picks PTQ or QAT, no layer fallback
    missed = run(tiny_onnx, tmp_path / "b.onnx", calib, target="cpu", qat=qat_opts(fer_mini),
                 max_drop=-100.0, val=val)  # unreachable: QAT runs, and neither meets it
    section = missed["qat"]
    assert section["ptq"]["met"] is False and section["path"].startswith("neither")
    assert section["qat"]["epoch_selected_on"] == "--val images"  # the labelled images pick the epoch
    assert section["qat"]["held_out"] == len(list(val.rglob("*.png")))
    assert section["qat"]["val"]["met"] is False and section["budget"]["max_drop"] == -1.0


def test_qat_bad_arguments(tiny_onnx, calib, fer_mini, tmp_path):
    with pytest.raises(EdgeFerError, match="add --qat"):
        run(tiny_onnx, tmp_path / "x.onnx", calib, target="cpu", min_agreement=99.0, val=fer_mini / "val")
    with pytest.raises(EdgeFerError, match="not a folder"):
        run(tiny_onnx, tmp_path / "x.onnx", calib, target="cpu", qat=QatOptions(tmp_path / "nowhere"))
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.json").exists()
