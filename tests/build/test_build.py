"""edge-fer build: OpenVINO IR (real OpenVINO), TensorRT engines (a faithful fake), Jetson bundle, DeepStream config."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import FER_CLASSES as CLASSES
from fakes import fake_tensorrt  # tests/ is on sys.path (pytest rootdir-relative import)
from typer.testing import CliRunner

from edge_fer import platform as host
from edge_fer.artifacts.checkpoint import load_checkpoint
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.backends import open_runner
from edge_fer.backends.tensorrt_backend import check_version
from edge_fer.build.jetson import JetsonBuild, build_jetson
from edge_fer.build.openvino import CHECK_FACES, IntelBuild, build_intel, check_intel_precision
from edge_fer.build.run import CalibrationSource, check_target_options
from edge_fer.build.tensorrt import EngineSettings, Flavor, check_jetson_precision, layer_precisions
from edge_fer.cli import app
from edge_fer.data.faces import embedded_faces
from edge_fer.data.preprocessing import Preprocessing, preprocess
from edge_fer.export.onnx_export import export_checkpoint
from edge_fer.platform import jetpack_release, l4t_release
from edge_fer.quantize.options import QuantizeOptions
from edge_fer.quantize.run import quantize
from edge_fer.quantize.tensorrt_qdq import check_tensorrt_qdq


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    return embedded_faces()


@pytest.fixture(scope="module")
def jetson_qdq(tiny_onnx, faces) -> Path:
    out = tiny_onnx.with_name("model.jetson.onnx")
    quantize(tiny_onnx, out, faces[:40], QuantizeOptions(target="jetson"))
    return out


@pytest.fixture(params=fake_tensorrt.SUPPORTED)
def trt(monkeypatch, request):
    """The strict fake of one recorded TensorRT release: every TensorRT test runs once per supported version."""
    yield fake_tensorrt.install(monkeypatch, version=request.param)
    fake_tensorrt.uninstall()


def ort_logits(path: Path, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": batch})[0]


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- bad input


def test_invalid_target_precision_pairs_list_the_valid_ones():
    with pytest.raises(EdgeFerError, match="valid precisions there are fp16, int8"):
        check_jetson_precision("fp32")
    with pytest.raises(EdgeFerError, match="not available on GPU: valid precisions there are fp32, fp16, int8"):
        check_intel_precision("gpu", "bf16")
    with pytest.raises(EdgeFerError, match="valid precisions there are fp16, int8"):
        check_intel_precision("NPU", "fp32")
    with pytest.raises(EdgeFerError, match="use one of CPU, GPU, NPU, AUTO"):
        check_intel_precision("TPU", "fp32")
    with pytest.raises(EdgeFerError, match="use one of intel, jetson"):
        check_target_options("arm", {})
    with pytest.raises(EdgeFerError, match="--dla-core, --deepstream: not an option for --target intel"):
        check_target_options("intel", {"--dla-core": 0, "--deepstream": True, "--gpu-fallback": False})
    with pytest.raises(EdgeFerError, match="--gpu-fallback only applies with --dla-core"):
        EngineSettings("fp16", gpu_fallback=True)
    with pytest.raises(EdgeFerError, match="DLA engines take one fixed batch"):
        EngineSettings("fp16", dla_core=0, opt_batch=1, max_batch=4)
    assert EngineSettings("int8", dla_core=0, opt_batch=4).profile == (4, 4, 4)
    assert EngineSettings("fp16", opt_batch=2).profile == (1, 2, 8)


def test_cli_errors_are_one_line(tiny_onnx, tmp_path):
    for args in (["--target", "jetson", "--precision", "fp32", "-o", str(tmp_path / "m.engine")],
                 ["--target", "intel", "--precision", "int8", "--device", "NPU", "--hint", "FAST",
                  "-o", str(tmp_path / "ir")],
                 ["--target", "intel", "-o", str(tmp_path / "missing" / "ir")],
                 ["--target", "intel", "--dla-core", "0", "-o", str(tmp_path / "ir")]):
        result = CliRunner().invoke(app, ["build", str(tiny_onnx), *args])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert not (tmp_path / "missing").exists() and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- intel (real OpenVINO)


def test_intel_fp32_ir_is_fp32_with_metadata_and_report(tiny_onnx, tmp_path, faces):
    import openvino as ov

    from edge_fer.backends.openvino_backend import rt_info_strings

    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--target", "intel", "--precision", "fp32",
                                      "-o", str(tmp_path / "ir")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "ir").iterdir()) == ["build.json", "model.bin", "model.xml"]
    assert leftovers(tmp_path) == []
    model = ov.Core().read_model(str(tmp_path / "ir" / "model.xml"))
    weights = {op.get_element_type().get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant"
               and op.get_output_partial_shape(0).rank.get_length() == 4}
    assert weights == {"f32"}  # compress_to_fp16 off: the conv weights are really fp32
    props = rt_info_strings(model)
    source = {p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props}
    for key in ("edge_fer.classes", "edge_fer.preprocessing", "edge_fer.source_sha256"):
        assert props[key] == source[key]
    assert props["edge_fer.source_onnx_sha256"] == sha256(tiny_onnx) and props["edge_fer.precision"] == "fp32"
    report = json.loads((tmp_path / "ir" / "build.json").read_text())
    assert report["requested_precision"] == "fp32" and report["actual_precision"] == "fp32"
    assert report["inference_precision"] == "f32" and report["performance_hint"] == "LATENCY"
    assert isinstance(report["streams"], int) and isinstance(report["threads"], int)
    assert report["source_onnx_sha256"] == sha256(tiny_onnx) and report["compiled"] is True
    assert report["check_vs_onnx"]["max_abs_logit_diff"] < 1e-3 and report["check_vs_onnx"]["top1_agreement"] == 1.0
    runner = open_runner(tmp_path / "ir" / "model.xml")
    assert runner.precision == "fp32" and runner.info.classes == CLASSES
    batch = preprocess(faces[:3], runner.info.preprocessing)
    np.testing.assert_allclose(runner(batch), ort_logits(tiny_onnx, batch), atol=1e-3)


@pytest.fixture(scope="module")
def reference_onnx(tmp_path_factory) -> Path:
    """The shipped reference model (224 px, width 1.0), exported and verified like a user would."""
    from edge_fer.artifacts.defaults import REFERENCE_MODEL

    out = tmp_path_factory.mktemp("reference") / "fernet.onnx"
    export_checkpoint(load_checkpoint(REFERENCE_MODEL), out, embedded_faces()[:8])
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
def test_intel_builds_of_the_reference_model_run_as_reported(reference_onnx, fer_mini, tmp_path, precision):
    """Each precision of the real model builds, runs and reads back what it computes in (fp16/bf16 only where the
    CPU has them: elsewhere the report says fp32); the IR stays within tolerance of ONNX Runtime."""
    calibration = CalibrationSource(str(fer_mini / "val") if precision == "int8" else None, size=64)
    report = build_intel(IntelBuild(reference_onnx, tmp_path / "ir", precision, threads=2, calibration=calibration))
    names = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8"}
    assert report["requested_precision"] == precision and report["compiled"] is True
    if precision in ("fp32", "int8"):
        assert report["actual_precision"] == precision
    else:
        assert report["actual_precision"] == names[report["inference_precision"]]
        assert ("warning" in report) == (report["actual_precision"] != precision)
    runner = open_runner(tmp_path / "ir" / "model.xml", precision=None if precision == "int8" else precision)
    assert runner.precision == report["actual_precision"] and runner.info.img_size == 64  # the v2 default's size
    check = report["check_vs_onnx"]
    assert check["n"] == CHECK_FACES and check["top1_agreement"] >= (1.0 if precision == "fp32" else 0.75)
    # v2's logits span ~7 (median max-min) where v1's spanned 1.6: int8 measured 2.8 on these LFW faces
    assert check["max_abs_logit_diff"] < (1e-3 if precision == "fp32" else 4.0)


def test_jetson_qdq_of_the_reference_model_is_judged_with_tensorrt_numerics(reference_onnx, fer_mini, tmp_path):
    """The jetson QDQ keeps full 8-bit weights: TensorRT accumulates in int32.  ORT's x86 int8 kernels
    without VNNI can sum u8 x s8 pairs in saturating int16, so quantize's check and the ORT runner simulate
    the Q/DQ pairs in float for that artifact instead of judging it by this CPU's kernels."""
    from edge_fer.backends.onnxruntime_backend import OrtRunner
    from edge_fer.data.dataset import SkipReport
    from edge_fer.quantize.calibration import load_calibration

    images, desc = load_calibration(str(fer_mini / "val"), 64, 0, SkipReport())
    report = quantize(reference_onnx, tmp_path / "j.onnx", images, QuantizeOptions(target="jetson"), calibration=desc)
    simulated = OrtRunner.open(tmp_path / "j.onnx")  # the artifact's metadata says jetson
    assert "simulated" in simulated.settings["int8"]
    faces = preprocess(load_calibration(str(fer_mini / "test"), 96, 1, SkipReport())[0], simulated.info.preprocessing)
    reference = ort_logits(reference_onnx, faces)
    # errors relative to the model's logit scale (median max-min logit): v1 (224 px) 0.11 of 1.6; v2 (64 px)
    # 1.8 of 7.3 held out and 2.2 of 6.8 on these faces: the jetson QDQ loses more on v2 (issue: QAT)
    spread = float(np.median(reference.max(1) - reference.min(1)))
    assert report["float_vs_int8_heldout"]["mean_abs_logit_diff"] < 0.4 * spread  # judged simulated
    sim_err = np.abs(simulated(faces) - reference).mean()
    assert sim_err < 0.4 * spread and (simulated(faces).argmax(1) == reference.argmax(1)).mean() >= 0.8
    # This CPU's own int8 kernels stay one flag away. How far they drift on an AVX2 host depends on the model's
    # activation ranges: 0.58 against 0.10 simulated for the first reference model, 0.051 against 0.051 for
    # today's default (AMD EPYC, ORT 1.32); simulating keeps the verdict the same on every host.
    kernels = OrtRunner.open(tmp_path / "j.onnx", simulate_int8=False)
    assert "int8" not in kernels.settings and kernels(faces).shape == reference.shape


def test_intel_bf16_records_what_the_cpu_really_computes(tiny_onnx, tmp_path):
    cache = tmp_path / "ov-cache"
    report = build_intel(IntelBuild(tiny_onnx, tmp_path / "ir", "bf16", hint="throughput", threads=1, cache_dir=cache))
    names = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
    assert report["actual_precision"] == names[report["inference_precision"]]  # read back, not assumed
    # only CPUs with AVX-512 BF16 / AMX honour bf16; elsewhere OpenVINO runs fp32 and the report says so
    assert ("warning" in report) == (report["actual_precision"] != "bf16")
    assert report["performance_hint"] == "THROUGHPUT" and report["threads"] == 1
    assert any(cache.iterdir())  # the compiled-model cache was warmed by the build
    saved = json.loads((tmp_path / "ir" / "build.json").read_text())
    assert saved["requested_precision"] == "bf16" and saved["actual_precision"] == report["actual_precision"]


def test_intel_auto_device_reports_the_request_and_execution_devices(tiny_onnx, tmp_path):
    report = build_intel(IntelBuild(tiny_onnx, tmp_path / "ir", "fp32", device="auto"))
    assert report["device"] == "AUTO" and report["inference_precision"] == "unreported"
    assert report["actual_precision"] == "fp32" and report["execution_devices"]


def test_intel_int8_comes_from_nncf_with_provenance(tiny_onnx, tmp_path):
    import openvino as ov

    from edge_fer.backends.openvino_backend import rt_info_strings

    report = build_intel(IntelBuild(tiny_onnx, tmp_path / "ir", "int8"))
    files = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert files == ["build.json", "model.bin", "model.xml", "quantize.json"] and leftovers(tmp_path) == []
    model = ov.Core().read_model(str(tmp_path / "ir" / "model.xml"))
    assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    props = rt_info_strings(model)
    assert props["edge_fer.precision"] == "int8" and props["edge_fer.source_onnx_sha256"] == sha256(tiny_onnx)
    assert report["actual_precision"] == "int8" and report["calibration"]["kind"] == "embedded"
    qreport = json.loads((tmp_path / "ir" / "quantize.json").read_text())
    assert qreport["target"] == "intel" and qreport["output"] == str(tmp_path / "ir" / "model.xml")  # not the stage


def test_intel_from_checkpoint_replaces_a_previous_build(tiny_checkpoint, tmp_path):
    out = tmp_path / "ir"
    out.mkdir()
    (out / "quantize.json").write_text("{}")  # from an earlier int8 build: must not survive an fp32 one
    (out / "notes.txt").write_text("mine")
    report = build_intel(IntelBuild(tiny_checkpoint, out, "fp32"))
    assert sorted(p.name for p in out.iterdir()) == ["build.json", "model.bin", "model.xml", "notes.txt"]
    assert report["source"] == str(tiny_checkpoint) and report["check_vs_onnx"]["top1_agreement"] == 1.0


def test_intel_device_absent_here_still_writes_the_ir(tiny_onnx, tmp_path):
    import openvino as ov

    if any(d.startswith("NPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an NPU")
    report = build_intel(IntelBuild(tiny_onnx, tmp_path / "ir", "fp16", device="NPU"))
    assert report["compiled"] is False and "NPU is not present" in report["note"]
    assert (tmp_path / "ir" / "model.xml").is_file()


def test_intel_rejects_bad_outputs_and_quantized_input(tiny_onnx, jetson_qdq, tmp_path):
    with pytest.raises(EdgeFerError, match="does not exist"):
        build_intel(IntelBuild(tiny_onnx, tmp_path / "no" / "ir"))
    with pytest.raises(EdgeFerError, match="writes a folder"):
        build_intel(IntelBuild(tiny_onnx, tmp_path / "model.xml"))
    with pytest.raises(EdgeFerError, match="already quantized"):
        build_intel(IntelBuild(jetson_qdq, tmp_path / "ir"))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- jetson (strict per-version fake)


def strong(trt) -> bool:
    """Strongly typed release (TensorRT 11 here): no precision flags, precision from the graph."""
    return Flavor.of(trt.version).strongly_typed


def test_fp16_engine_sidecar_and_dynamic_batch(trt, tiny_onnx, tmp_path, faces):
    engine = tmp_path / "model.engine"
    cache = tmp_path / "timing.cache"
    settings = EngineSettings("fp16", workspace_mb=256, timing_cache=str(cache), opt_batch=2, max_batch=4)
    report = build_jetson(JetsonBuild(tiny_onnx, engine, settings))
    build = trt.builds[-1]
    # weak typing: the FP16 flag on the float ONNX; strong typing: no flag, a float16 ONNX
    assert build["flags"] == ([] if strong(trt) else ["FP16"]) and build["fp16_graph"] == strong(trt)
    assert build["strongly_typed"] == strong(trt) and build["explicit_batch"]
    assert build["device_type"] == "GPU" and build["workspace"] == 256 << 20
    assert build["profile"] == {"min": [1, 3, 64, 64], "opt": [2, 3, 64, 64], "max": [4, 3, 64, 64]}
    assert build["verbosity"] == "DETAILED" and build["timing_cache"] and cache.is_file()
    side = json.loads((tmp_path / "model.engine.json").read_text())
    assert side["tensorrt_version"] == trt.version and side["gpu"] == "Orin" and side["compute_capability"] == "8.7"
    assert side["typing"] == ("strong" if strong(trt) else "weak")
    assert side["precision"] == "fp16" and side["dla"] is None and side["int8_mode"] is None
    assert side["batch"] == {"min": 1, "opt": 2, "max": 4} and side["input"]["name"] == "images"
    assert side["source_onnx_sha256"] == (sha256(tiny_onnx) if not strong(trt) else side["source_onnx_sha256"])
    assert side["engine_sha256"] == sha256(engine) and side["source"]["onnx_sha256"] == sha256(tiny_onnx)
    assert side["metadata"]["edge_fer.precision"] == "fp16"
    assert json.loads(side["metadata"]["edge_fer.classes"]) == CLASSES
    # read through a context at the opt shape: real formats, not "N/A due to dynamic shapes"
    assert side["layers"]["summary"] == {"FP16": len(side["layers"]["layers"])} and report["layers"]["FP16"] > 0
    assert engine.read_bytes().startswith(fake_tensorrt.MAGIC)  # the plan as TensorRT wrote it, no edge-fer header
    runner = open_runner(engine)
    assert runner.backend == "tensorrt" and runner.precision == "fp16" and runner.info.classes == CLASSES
    for n in (1, 3, 6):  # 6 > max batch 4: split into 4 + 2
        batch = preprocess(faces[:n], runner.info.preprocessing)
        got, want = runner(batch), ort_logits(tiny_onnx, batch)
        assert got.shape == (n, 8)
        np.testing.assert_allclose(got, want, atol=0.05)  # fp16 rounding of the cosine-scaled logits
        assert (got.argmax(1) == want.argmax(1)).all()
    # a second build reads the timing cache it updated
    build_jetson(JetsonBuild(tiny_onnx, tmp_path / "again.engine", settings))
    assert json.loads(cache.read_bytes())["entries"]


def test_inspector_without_a_context_reads_na_on_dynamic_shapes(trt, tiny_onnx, tmp_path):
    """The failure the sidecar used to hit: inspected without a context, a dynamic engine has no formats."""
    import tensorrt

    build_jetson(JetsonBuild(tiny_onnx, tmp_path / "m.engine", EngineSettings("fp16")))
    engine = tensorrt.Runtime(tensorrt.Logger()).deserialize_cuda_engine((tmp_path / "m.engine").read_bytes())
    bare = layer_precisions(engine.create_engine_inspector().get_engine_information(
        tensorrt.LayerInformationFormat.JSON))
    assert set(bare["summary"]) == {"?"}  # "N/A due to dynamic shapes": unknown, never counted as a precision
    assert json.loads((tmp_path / "m.engine.json").read_text())["layers"]["summary"].keys() == {"FP16"}


def test_int8_from_qdq_is_explicit_quantization(trt, jetson_qdq, tmp_path, faces):
    engine = tmp_path / "int8.engine"
    build_jetson(JetsonBuild(jetson_qdq, engine, EngineSettings("int8")))
    build = trt.builds[-1]
    assert build["flags"] == ([] if strong(trt) else ["INT8"]) and build["has_qdq"] and "calibration" not in build
    side = json.loads((tmp_path / "int8.engine.json").read_text())
    assert side["int8_mode"] == "explicit (QDQ ONNX)" and side["layers"]["summary"]["Int8"] > 0
    runner = open_runner(engine)
    batch = preprocess(faces[:3], runner.info.preprocessing)
    # against the QDQ run with TensorRT's numerics (open_runner simulates a jetson QDQ's Q/DQ pairs)
    np.testing.assert_allclose(runner(batch), open_runner(jetson_qdq)(batch), atol=1e-4)


def test_jetson_qdq_carries_float_weights_through_qdq_pairs(jetson_qdq):
    """AddQDQPairToWeight: TensorRT 8.x rejects int8 weight initialisers + DQ ("invalid weights type of Int8")."""
    proto = onnx.load(str(jetson_qdq))
    init = {t.name: t for t in proto.graph.initializer}
    producer = {o: n for n in proto.graph.node for o in n.output}
    convs = [n for n in proto.graph.node if n.op_type == "Conv" and producer.get(n.input[1], n).op_type
             == "DequantizeLinear"]
    assert convs and check_tensorrt_qdq(proto) == []
    for conv in convs:
        q = producer[producer[conv.input[1]].input[0]]
        assert q.op_type == "QuantizeLinear" and init[q.input[0]].data_type == onnx.TensorProto.FLOAT
    assert not any(t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4 for t in init.values())


def test_int8_from_float_onnx_quantizes_for_tensorrt_first(trt, tiny_onnx, tmp_path):
    build_jetson(JetsonBuild(tiny_onnx, tmp_path / "m.engine", EngineSettings("int8")))
    assert trt.builds[-1]["flags"] == ([] if strong(trt) else ["INT8"]) and trt.builds[-1]["has_qdq"]
    side = json.loads((tmp_path / "m.engine.json").read_text())
    assert side["calibration"]["kind"] == "embedded" and side["source"]["onnx_sha256"] == sha256(tiny_onnx)


def test_fp16_refuses_a_quantized_onnx(trt, jetson_qdq, tmp_path):
    with pytest.raises(EdgeFerError, match="already quantized; --precision fp16"):
        build_jetson(JetsonBuild(jetson_qdq, tmp_path / "x.engine", EngineSettings("fp16")))


def test_dla_fp16_fixed_batch_padding_and_fallback_layers_named(trt, tiny_onnx, tmp_path, faces):
    engine = tmp_path / "dla.engine"
    with pytest.raises(EdgeFerError, match=r"layers cannot run on DLA \(.*\); add --gpu-fallback"):
        build_jetson(JetsonBuild(tiny_onnx, engine, EngineSettings("fp16", dla_core=1, opt_batch=2)))
    assert not trt.builds and list(tmp_path.iterdir()) == []  # refused before TensorRT built anything
    build_jetson(JetsonBuild(tiny_onnx, engine, EngineSettings("fp16", dla_core=1, gpu_fallback=True, opt_batch=2)))
    build = trt.builds[-1]
    assert build["flags"] == (["GPU_FALLBACK"] if strong(trt) else ["FP16", "GPU_FALLBACK"])
    assert build["device_type"] == "DLA" and build["dla_core"] == 1
    assert build["profile"]["min"] == build["profile"]["max"] == [2, 3, 64, 64]
    side = json.loads((tmp_path / "dla.engine.json").read_text())
    # never "DLA" alone: the layers TensorRT sends to the GPU are named (the same ones the fake's builder moved)
    assert side["dla"]["core"] == 1 and side["dla"]["gpu_fallback"] is True
    assert side["dla"]["layers_on_gpu"] == build["on_gpu"] and side["dla"]["layers_on_gpu"]
    assert side["dla"]["layers_on_dla"] > 0 and side["batch"] == {"min": 2, "opt": 2, "max": 2}
    runner = open_runner(engine)
    for n in (1, 3):  # padded to the fixed batch 2 / split 2 + 1(padded)
        batch = preprocess(faces[:n], runner.info.preprocessing)
        out = runner(batch)
        assert out.shape == (n, 8)
        np.testing.assert_allclose(out, ort_logits(tiny_onnx, batch), atol=0.05)
    with pytest.raises(EdgeFerError, match="has 2 DLA core"):
        build_jetson(JetsonBuild(tiny_onnx, tmp_path / "x.engine",
                                 EngineSettings("fp16", dla_core=2, gpu_fallback=True)))


def test_dla_int8_is_implicit_on_tensorrt8_and_refused_later(trt, tiny_onnx, jetson_qdq, tmp_path, faces):
    """DLA runs no Q/DQ: TensorRT 8.x calibrates the float ONNX (cache kept); 10+ has no implicit INT8 left."""
    settings = EngineSettings("int8", dla_core=0, gpu_fallback=True, opt_batch=8)
    if Flavor.of(trt.version).implicit_int8:
        build_jetson(JetsonBuild(tiny_onnx, tmp_path / "dla.engine", settings))
        build = trt.builds[-1]
        assert build["device_type"] == "DLA" and not build["has_qdq"] and build["calibration"] == "calibrated"
        assert build["flags"] == ["FP16", "GPU_FALLBACK", "INT8"] and (tmp_path / "dla.engine.calib").is_file()
        side = json.loads((tmp_path / "dla.engine.json").read_text())
        assert side["int8_mode"] == "implicit (IInt8EntropyCalibrator2)" and side["dla"]["layers_on_gpu"]
        with pytest.raises(EdgeFerError, match="already quantized"):
            build_jetson(JetsonBuild(jetson_qdq, tmp_path / "q.engine", settings))
    else:
        with pytest.raises(EdgeFerError, match=rf"DLA runs INT8 only with implicit .* TensorRT {trt.version[:4]}.* "
                                               r"DLA fp16 engine \(--precision fp16\)"):
            build_jetson(JetsonBuild(tiny_onnx, tmp_path / "dla.engine", settings))
        assert not trt.builds and list(tmp_path.iterdir()) == []


def test_fake_refuses_qdq_on_dla_like_tensorrt(trt, jetson_qdq, tmp_path):
    """Below edge-fer's own check: the fake's builder keeps every Q/DQ network off DLA."""
    import tensorrt

    logger = tensorrt.Logger()
    builder = tensorrt.Builder(logger)
    kind = "STRONGLY_TYPED" if strong(trt) else "EXPLICIT_BATCH"
    network = builder.create_network(1 << int(getattr(tensorrt.NetworkDefinitionCreationFlag, kind)))
    assert tensorrt.OnnxParser(network, logger).parse_from_file(str(jetson_qdq))
    config = builder.create_builder_config()
    config.default_device_type = tensorrt.DeviceType.DLA
    config.DLA_core = 0
    if not strong(trt):
        config.set_flag(tensorrt.BuilderFlag.INT8)
    assert not any(config.can_run_on_DLA(network.get_layer(i)) for i in range(network.num_layers))
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64))
    config.add_optimization_profile(profile)
    assert builder.build_serialized_network(network, config) is None
    assert "DLA does not support explicit quantization" in trt.log[-1]


def test_mismatched_timing_cache_stops_before_the_build(monkeypatch, tiny_onnx, tmp_path):
    fake_tensorrt.install(monkeypatch, gpu="Orin")
    cache = tmp_path / "timing.cache"
    build_jetson(JetsonBuild(tiny_onnx, tmp_path / "a.engine", EngineSettings("fp16", timing_cache=str(cache))))
    written = cache.read_bytes()
    fake_tensorrt.uninstall()
    state = fake_tensorrt.install(monkeypatch, gpu="Xavier", compute_capability=(7, 2))
    with pytest.raises(EdgeFerError, match=r"--timing-cache .*TensorRT refused it .*give a new path or delete it"):
        build_jetson(JetsonBuild(tiny_onnx, tmp_path / "b.engine", EngineSettings("fp16", timing_cache=str(cache))))
    assert state.builds == [] and cache.read_bytes() == written and not (tmp_path / "b.engine").exists()
    fake_tensorrt.uninstall()


def test_engine_from_another_gpu_l4t_or_tensorrt_says_rebuild(monkeypatch, tiny_onnx, tmp_path):
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic, EABI: aarch64, DATE: x\n")
    monkeypatch.setattr(host, "L4T_RELEASE", release)
    fake_tensorrt.install(monkeypatch)
    engine = tmp_path / "model.engine"
    build_jetson(JetsonBuild(tiny_onnx, engine, EngineSettings("fp16")))
    assert json.loads((tmp_path / "model.engine.json").read_text())["l4t_release"] == "R36.4.3"
    fake_tensorrt.uninstall()
    fake_tensorrt.install(monkeypatch, version="10.7.0")
    with pytest.raises(EdgeFerError, match=r"TensorRT 10\.3\.0 \(here: 10\.7\.0\).*rebuild it"):
        open_runner(engine)
    fake_tensorrt.uninstall()
    fake_tensorrt.install(monkeypatch, gpu="Xavier", compute_capability=(7, 2))
    with pytest.raises(EdgeFerError, match=r"GPU Orin \(here: Xavier\).*compute capability 8\.7.*rebuild"):
        open_runner(engine)
    fake_tensorrt.uninstall()
    fake_tensorrt.install(monkeypatch)  # same "Orin", same TensorRT: only the L4T release tells them apart
    release.write_text("# R36 (release), REVISION: 4.0, GCID: 1, BOARD: generic, EABI: aarch64, DATE: x\n")
    with pytest.raises(EdgeFerError, match=r"L4T R36\.4\.3 \(here: R36\.4\.0\).*rebuild"):
        open_runner(engine)
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic, EABI: aarch64, DATE: x\n")
    engine.write_bytes(engine.read_bytes() + b"x")
    with pytest.raises(EdgeFerError, match="does not match its sidecar"):
        open_runner(engine)
    (tmp_path / "model.engine.json").unlink()
    with pytest.raises(EdgeFerError, match="no sidecar"):
        open_runner(engine)
    fake_tensorrt.uninstall()


@pytest.mark.parametrize("version, why", [("8.2.1", "JetPack 4.6"), ("8.0.1", "JetPack 4.6"), ("8.5.2", "8.6, 10.x"),
                                          ("9.3.0", "8.6, 10.x"), ("12.0.0", "8.6, 10.x and 11.x")])
def test_unsupported_tensorrt_is_one_line(version, why):
    with pytest.raises(EdgeFerError, match=rf"TensorRT {re.escape(version)}: edge-fer supports .*{re.escape(why)}"):
        check_version(version)
    with pytest.raises(EdgeFerError, match=r"give MAJOR\.MINOR"):
        EngineSettings("fp16", tensorrt="ten")
    assert Flavor.of("10.12.0").strongly_typed
    assert not Flavor.of("10.11.0").strongly_typed


def test_declared_tensorrt_must_match_the_installed_one(trt, tiny_onnx, tmp_path):
    other = "8.6" if trt.version.startswith("1") else "10.3"
    with pytest.raises(EdgeFerError, match=rf"--tensorrt {other}, but TensorRT {re.escape(trt.version)} is installed"):
        build_jetson(JetsonBuild(tiny_onnx, tmp_path / "m.engine", EngineSettings("fp16", tensorrt=other)))
    assert list(tmp_path.iterdir()) == []


def test_missing_tensorrt_or_pycuda_is_one_clear_line(monkeypatch, tiny_onnx, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--target", "jetson", "-o", str(tmp_path / "m.engine")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "TensorRT is not installed" in lines[0]
    assert "--bundle" in lines[0] and list(tmp_path.iterdir()) == []
    fake_tensorrt.install(monkeypatch, pycuda=False)
    build_jetson(JetsonBuild(tiny_onnx, tmp_path / "m.engine", EngineSettings("fp16")))  # building needs no pycuda
    assert json.loads((tmp_path / "m.engine.json").read_text())["gpu"] == ""
    with pytest.raises(EdgeFerError, match="neither pycuda nor cuda-python is installed"):
        open_runner(tmp_path / "m.engine")


def test_cuda_python_serves_where_pycuda_is_absent(monkeypatch, tiny_onnx, tmp_path, faces):
    """Newer JetPack images ship cuda-python rather than pycuda: the same engine runs through it."""
    fake_tensorrt.install(monkeypatch, pycuda=False, cuda_python=True)
    engine = tmp_path / "m.engine"
    build_jetson(JetsonBuild(tiny_onnx, engine, EngineSettings("fp16")))
    assert json.loads((tmp_path / "m.engine.json").read_text())["gpu"] == "Orin"  # GPU facts via cuda-python
    runner = open_runner(engine)
    assert runner.settings["cuda_binding"] == "cuda-python" and runner.settings["compute_capability"] == "8.7"
    batch = preprocess(faces[:3], runner.info.preprocessing)
    np.testing.assert_allclose(runner(batch), ort_logits(tiny_onnx, batch), atol=0.05)  # fp16 rounding
    fake_tensorrt.uninstall()


def test_implicit_int8_calibrator_where_tensorrt_still_has_it(trt, tiny_onnx, tmp_path, faces):
    engine = tmp_path / "m.engine"
    settings = EngineSettings("int8", implicit_int8=True)
    if not Flavor.of(trt.version).implicit_int8:
        with pytest.raises(EdgeFerError, match=rf"deprecated in TensorRT {re.escape(trt.version)}"):
            build_jetson(JetsonBuild(tiny_onnx, engine, settings))
        assert not trt.builds
        return
    build_jetson(JetsonBuild(tiny_onnx, engine, settings))
    build = trt.builds[-1]
    assert build["explicit_batch"] and build["flags"] == ["INT8"] and not build["has_qdq"]
    assert build["calibration"] == "calibrated" and build["calibrated_batches"] == 12  # 100 faces / 8, full only
    cache = tmp_path / "m.engine.calib"
    assert json.loads(cache.read_bytes())["images"] > 0
    side = json.loads((tmp_path / "m.engine.json").read_text())
    assert side["int8_mode"] == "implicit (IInt8EntropyCalibrator2)"
    build_jetson(JetsonBuild(tiny_onnx, engine, settings))
    assert trt.builds[-1]["calibration"] == "from cache"
    runner = open_runner(engine)
    batch = preprocess(faces[:2], runner.info.preprocessing)
    np.testing.assert_allclose(runner(batch), ort_logits(tiny_onnx, batch), atol=1e-4)  # fake runs the float graph


def test_static_batch_onnx_needs_matching_profile(trt, tiny_onnx, tmp_path):
    proto = onnx.load(str(tiny_onnx))
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    static = tmp_path / "static.onnx"
    onnx.save_model(proto, str(static))
    with pytest.raises(EdgeFerError, match="static batch 1"):
        build_jetson(JetsonBuild(static, tmp_path / "m.engine", EngineSettings("fp16")))
    build_jetson(JetsonBuild(static, tmp_path / "m.engine", EngineSettings("fp16", max_batch=1)))
    assert trt.builds[-1]["profile"] is None
    assert open_runner(tmp_path / "m.engine").max_batch == 1


def test_output_checks_leave_nothing_behind(trt, tiny_onnx, tmp_path):
    with pytest.raises(EdgeFerError, match="does not exist"):
        build_jetson(JetsonBuild(tiny_onnx, tmp_path / "no" / "m.engine", EngineSettings()))
    with pytest.raises(EdgeFerError, match=r"ends in \.engine"):
        build_jetson(JetsonBuild(tiny_onnx, tmp_path / "m.onnx", EngineSettings()))
    with pytest.raises(EdgeFerError, match="not both"):
        build_jetson(JetsonBuild(tiny_onnx, tmp_path / "m.engine", EngineSettings(), bundle=tmp_path / "b"))
    bad = tmp_path / "bad.onnx"
    proto = onnx.load(str(tiny_onnx))
    proto.graph.node[0].op_type = "NotAnOp"
    onnx.save_model(proto, str(bad))
    # strongly typed: the float16 conversion (onnx's checker) finds it first, else TensorRT's parser
    with pytest.raises(EdgeFerError, match="cannot convert it to float16" if strong(trt) else "cannot parse"):
        build_jetson(JetsonBuild(bad, tmp_path / "m.engine", EngineSettings()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def test_l4t_release_is_read_when_present(tmp_path):
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: x\n")
    assert l4t_release(release) == "R35.4.1" and jetpack_release("R35.4.1") == "5.1.2"
    assert jetpack_release("R36.4.3") == "6.2" and jetpack_release("R99.1.0") == "unknown (L4T R99.1.0)"
    assert jetpack_release("") == ""
    assert l4t_release(tmp_path / "absent") == ""


# ----------------------------------------------------------------------------- bundle and DeepStream


def nvinfer_properties(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")


@pytest.fixture()
def calib_folder(tmp_path, faces) -> Path:
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, face in enumerate(faces[:40]):
        cv2.imwrite(str(folder / f"{i:03d}.png"), face)
    return folder


def fake_trtexec(tmp_path: Path, python_version: str | None = None) -> dict[str, str]:
    """PATH with a trtexec stub (logs its args, writes the engine) and, optionally, a python3 whose
    ``tensorrt.__version__`` is ``python_version`` (what build.sh reads on a Jetson)."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    (tools / "trtexec").write_text('#!/bin/bash\necho "$@" >> trtexec.log\nfor a in "$@"; do case $a in '
                                   '--saveEngine=*) echo plan > "${a#--saveEngine=}";; esac; done\n')
    (tools / "trtexec").chmod(0o755)
    if python_version:
        (tools / "python3").write_text(f"#!/bin/sh\necho {python_version}\n")
        (tools / "python3").chmod(0o755)
    return {"PATH": f"{tools}:/usr/bin:/bin", "HOME": str(tmp_path)}


@pytest.mark.parametrize("tensorrt", ["8.6", "10.3", "10.12", "11.4"])
def test_bundle_int8_with_deepstream_follows_the_declared_tensorrt(monkeypatch, tiny_onnx, tmp_path, calib_folder,
                                                                   tensorrt):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # the bundle needs no TensorRT
    bundle = tmp_path / "bundle"
    settings = EngineSettings("int8", workspace_mb=512, opt_batch=2, max_batch=16, tensorrt=tensorrt)
    flavor = Flavor.of(tensorrt)
    calibration = CalibrationSource(str(calib_folder), 40)
    report = build_jetson(JetsonBuild(tiny_onnx, None, settings, calibration, bundle=bundle, deepstream=True))
    calib_file = [] if flavor.strongly_typed else ["model.deepstream.calib"]
    assert report["files"] == sorted(p.name for p in bundle.iterdir()) == sorted([
        "README.md", "build.sh", "calibration.txt", "metadata.json", "model.deepstream.onnx", "model.labels.txt",
        "model.nvinfer.txt", "model.onnx", "quantize.json", *calib_file])
    assert leftovers(tmp_path) == [] and os.access(bundle / "build.sh", os.X_OK)
    qdq = onnx.load(str(bundle / "model.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in qdq.graph.node) and check_tensorrt_qdq(qdq) == []
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["source_onnx_sha256"] == sha256(bundle / "model.onnx") and meta["precision"] == "int8"
    assert json.loads((bundle / "quantize.json").read_text())["output"] == "model.onnx"  # not the temp work file
    assert meta["tensorrt"] == tensorrt and meta["typing"] == ("strong" if flavor.strongly_typed else "weak")
    assert json.loads(meta["metadata"]["edge_fer.classes"]) == CLASSES
    assert meta["batch"] == {"min": 1, "opt": 2, "max": 16}
    assert (bundle / "calibration.txt").read_text().startswith("# edge-fer calibration manifest")
    assert f"TensorRT **{tensorrt}**" in (bundle / "README.md").read_text()
    script = (bundle / "build.sh").read_text()
    for flag in ("--minShapes=images:1x3x64x64", "--optShapes=images:2x3x64x64",
                 "--maxShapes=images:16x3x64x64", "--memPoolSize=workspace:512", "--saveEngine=model.engine",
                 "--minShapes=images:1x1x64x64", "edge-fer build model.onnx --target jetson --precision int8"):
        assert flag in script
    assert ("--int8" in script) == (not flavor.strongly_typed) and "--fp16" not in script and "--best" not in script
    assert ("--stronglyTyped" in script) == (tensorrt == "10.12")  # 11 has no weak mode (and no such flag)
    subprocess.run(["bash", "-n", str(bundle / "build.sh")], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(bundle / "build.sh")], check=True)
    props = nvinfer_properties(bundle / "model.nvinfer.txt")
    if flavor.strongly_typed:  # nvinfer's INT8 mode would set a flag a strongly typed network refuses
        assert props["network-mode"] == "0" and "int8-calib-file" not in props
    else:  # without a calib file nvinfer rebuilds in FP16 mode, which a Q/DQ network cannot build in
        assert props["network-mode"] == "1" and props["int8-calib-file"] == "model.deepstream.calib"
        lines = (bundle / props["int8-calib-file"]).read_text().splitlines()
        number = {"8.6": 8600, "10.3": 100300, "10.12": 101200}[tensorrt]
        assert lines[0] == f"TRT-{number}-EntropyCalibration2"
        ds = onnx.load(str(bundle / "model.deepstream.onnx"))
        q_inputs = [n.input[0] for n in ds.graph.node if n.op_type == "QuantizeLinear"]
        assert [line.split(": ")[0] for line in lines[1:]] == q_inputs
        assert all(struct.unpack(">f", bytes.fromhex(line.split(": ")[1]))[0] > 0 for line in lines[1:])
    # build.sh with trtexec only (no edge-fer on PATH): runs the flags and leaves a sidecar for edge-fer predict
    env = fake_trtexec(tmp_path)
    subprocess.run(["bash", str(bundle / "build.sh")], check=True, env=env, capture_output=True)
    runs = (bundle / "trtexec.log").read_text().splitlines()
    assert len(runs) == 2 and "--onnx=model.deepstream.onnx" in runs[1]
    assert json.loads((bundle / "model.engine.json").read_text())["metadata"] == meta["metadata"]
    with pytest.raises(EdgeFerError, match="not an empty folder"):
        build_jetson(JetsonBuild(tiny_onnx, None, EngineSettings("fp16"), bundle=bundle))


def test_bundle_build_sh_stops_on_another_tensorrt(monkeypatch, tiny_onnx, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    bundle = tmp_path / "b"
    build_jetson(JetsonBuild(tiny_onnx, None, EngineSettings("fp16", tensorrt="10.3"), bundle=bundle))
    proc = subprocess.run(["bash", str(bundle / "build.sh")], env=fake_trtexec(tmp_path, "11.4.0.106"),
                          capture_output=True, text=True)
    assert proc.returncode == 1 and not (bundle / "trtexec.log").exists()
    assert proc.stderr.strip().splitlines() == [
        "error: this bundle is for TensorRT 10.3, the Jetson has 11.4.0.106; write it again with edge-fer build "
        "--bundle DIR --tensorrt MAJOR.MINOR"]
    proc = subprocess.run(["bash", str(bundle / "build.sh")], env=fake_trtexec(tmp_path, "10.3.0"),
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "--fp16" in (bundle / "trtexec.log").read_text()


def test_strongly_typed_fp16_bundle_carries_the_float16_onnx(monkeypatch, tiny_onnx, tmp_path, faces):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    bundle = tmp_path / "b"
    build_jetson(JetsonBuild(tiny_onnx, None, EngineSettings("fp16", tensorrt="11.4"), bundle=bundle, deepstream=True))
    assert (bundle / "model.float.onnx").read_bytes() == tiny_onnx.read_bytes()
    half = onnx.load(str(bundle / "model.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in half.graph.initializer)
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O kept
    script = (bundle / "build.sh").read_text()
    assert "--fp16" not in script and "edge-fer build model.float.onnx --target jetson --precision fp16" in script
    assert nvinfer_properties(bundle / "model.nvinfer.txt")["network-mode"] == "0"
    batch = preprocess(faces[:8], Preprocessing(64))
    np.testing.assert_allclose(ort_logits(bundle / "model.onnx", batch), ort_logits(tiny_onnx, batch), atol=0.05)


def test_bundle_refuses_dla_int8(monkeypatch, tiny_onnx, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EdgeFerError, match="which a bundle cannot do"):
        build_jetson(JetsonBuild(tiny_onnx, None, EngineSettings("int8", dla_core=0, tensorrt="8.6"),
                                 bundle=tmp_path / "b"))
    with pytest.raises(EdgeFerError, match="DLA runs INT8 only with implicit"):
        build_jetson(JetsonBuild(tiny_onnx, None, EngineSettings("int8", dla_core=0), bundle=tmp_path / "b"))
    assert list(tmp_path.iterdir()) == []


def test_fp16_bundle_from_the_cli(monkeypatch, tiny_onnx, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--target", "jetson", "--dla-core", "0",
                                      "--gpu-fallback", "--tensorrt", "8.6", "--bundle", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "copy it to the Jetson and run build.sh" in result.output
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["README.md", "build.sh", "metadata.json",
                                                                  "model.onnx"]
    assert "quantize.json" not in (tmp_path / "b" / "README.md").read_text()
    script = (tmp_path / "b" / "build.sh").read_text()
    assert "--fp16 --useDLACore=0 --allowGPUFallback --minShapes=images:1x3x64x64" in script
    assert "--dla-core 0 --gpu-fallback" in script and "this bundle is for TensorRT 8.6" in script
    subprocess.run(["bash", "-n", str(tmp_path / "b" / "build.sh")], check=True)


def test_deepstream_config_reproduces_preprocessing(trt, tiny_onnx, tmp_path, faces):
    engine = tmp_path / "fer.engine"
    build_jetson(JetsonBuild(tiny_onnx, engine, EngineSettings("fp16", max_batch=4), deepstream=True))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["fer.deepstream.engine", "fer.deepstream.engine.json", "fer.deepstream.onnx", "fer.engine",
                     "fer.engine.json", "fer.labels.txt", "fer.nvinfer.txt"]
    assert trt.builds[-1]["profile"]["max"] == [4, 1, 64, 64]  # the grey-input engine, built second
    props = nvinfer_properties(tmp_path / "fer.nvinfer.txt")
    assert props["network-type"] == "1" and props["process-mode"] == "2" and props["model-color-format"] == "2"
    assert props["infer-dims"] == "1;64;64" and props["network-mode"] == ("0" if strong(trt) else "2")
    assert props["batch-size"] == "4"
    assert props["operate-on-gie-id"] == "1" and props["output-blob-names"] == "probs"
    assert props["model-engine-file"] == "fer.deepstream.engine" and props["onnx-file"] == "fer.deepstream.onnx"
    assert (tmp_path / props["labelfile-path"]).read_text() == ";".join(CLASSES) + "\n"
    assert float(props["classifier-threshold"]) == 0.0
    # nvinfer's y = net-scale-factor * (x - offset) on every grey level equals preprocess()
    spec = Preprocessing(64)
    scale, offset = float(props["net-scale-factor"]), float(props["offsets"])
    pixels = np.arange(256, dtype=np.uint8).repeat(16).reshape(64, 64)
    np.testing.assert_allclose(scale * (pixels.astype(np.float64) - offset), preprocess([pixels], spec)[0, 0],
                               atol=1e-6)
    # the grey-input, softmax-output model is the exported model on replicated grey, then softmax
    batch = preprocess(faces[:4], spec)
    session = ort.InferenceSession(str(tmp_path / "fer.deepstream.onnx"), providers=["CPUExecutionProvider"])
    probs = session.run(["probs"], {"images": np.ascontiguousarray(batch[:, :1])})[0]
    logits = ort_logits(tiny_onnx, batch)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), atol=1e-3 if strong(trt) else 1e-5)
    with pytest.raises(EdgeFerError, match="DeepStream variant"):
        open_runner(tmp_path / "fer.deepstream.engine")
