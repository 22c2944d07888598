"""INT8 quantization for cpu / jetson / intel on a tiny model: runtimes load it, rules hold, bytes repeat."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import FER_CLASSES as CLASSES

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.backends.onnxruntime_backend import OrtRunner
from edge_fer.data.dataset import SkipReport
from edge_fer.data.preprocessing import preprocess
from edge_fer.export.onnx_io import load_onnx, save_onnx
from edge_fer.quantize.calibration import load_calibration, make_manifest, write_manifest
from edge_fer.quantize.options import QuantizeOptions
from edge_fer.quantize.run import quantize
from edge_fer.quantize.tensorrt_qdq import check_tensorrt_qdq


@pytest.fixture(scope="module")
def calib(fer_mini):
    return load_calibration(str(fer_mini / "val"), 40, 0, SkipReport())


def run(tiny_onnx, out, calib, **kw):
    images, desc = calib
    return quantize(tiny_onnx, out, images, QuantizeOptions(**kw), calibration=desc)


def test_cpu_loads_in_ort_with_metadata_and_report(tiny_onnx, calib, tmp_path):
    report = run(tiny_onnx, tmp_path / "m.int8.onnx", calib, target="cpu")
    runner = OrtRunner.open(tmp_path / "m.int8.onnx")
    assert runner.precision == "int8" and runner.info.classes == CLASSES and runner.info.img_size == 64
    logits = runner(preprocess(calib[0][:3], runner.info.preprocessing))
    assert logits.shape == (3, 8) and np.isfinite(logits).all()
    saved = json.loads((tmp_path / "m.int8.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["calibration"]["used"] == 32 and saved["calibration"]["held_out"] == 8
    assert saved["calibration"]["manifest_sha256"] == calib[1]["manifest_sha256"]
    assert saved["float_vs_int8_heldout"]["n"] == 8
    # the stem (reads the uint8-quantized image) stays float on cpu: int16 saturation without VNNI
    model = onnx.load(str(tmp_path / "m.int8.onnx"))
    stem = next(n for n in model.graph.node if n.op_type == "Conv")
    kept = {k["node"]: k["reason"] for k in saved["cpu_float"]}
    assert "VNNI" in kept[stem.name]
    gates = [n for n, why in kept.items() if why.startswith("attention gate")]
    assert {n.op_type for n in model.graph.node if n.name in gates} >= {"Sigmoid", "Mul", "ReduceMean", "ReduceMax"}
    assert all("cbam" in n for n in gates)  # the walk stops at the gated feature map: no trunk conv is caught
    sigmoid_out = {o for n in model.graph.node if n.op_type == "Sigmoid" for o in n.output}
    assert sigmoid_out and not any(n.op_type == "QuantizeLinear" and n.input[0] in sigmoid_out
                                   for n in model.graph.node)  # the gate itself is never quantized
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers.get(stem.input[1]) != "DequantizeLinear"
    assert saved["float_vs_int8_heldout"]["top1_agreement"] >= 0.75
    assert saved["sizes_bytes"]["int8"] < saved["sizes_bytes"]["float"]
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_cpu_is_deterministic(tiny_onnx, calib, tmp_path):
    run(tiny_onnx, tmp_path / "a.onnx", calib, target="cpu", method="entropy")
    run(tiny_onnx, tmp_path / "b.onnx", calib, target="cpu", method="entropy")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_ranges_are_computed_once_and_reused(tiny_onnx, calib, tmp_path, monkeypatch, method):
    """Entropy/percentile ranges come from edge-fer's streaming histograms, reach ORT as its calibration
    cache, and a second quantization with that cache (a --max-drop retry) reads them instead of recalibrating."""
    from edge_fer.quantize import activation_ranges
    from edge_fer.quantize.options import Recipe
    from edge_fer.quantize.ort import OrtRun, ort_quantize, prepare_float
    from edge_fer.quantize.run import CALIB_BATCH, make_batches

    float_path = prepare_float(onnx.load(str(tiny_onnx)), tmp_path)
    batches = make_batches(calib[0][:4 * CALIB_BATCH], load_onnx(tiny_onnx)[1])
    ranges = tmp_path / "ranges.json"
    run = OrtRun(float_path, batches, Recipe("cpu", method, True, True), ranges)
    ort_quantize(run, tmp_path / "a.onnx", [])
    cache = json.loads(ranges.read_text())
    assert method.capitalize() in json.dumps(cache["calibration_method"])
    relu = next(n.output[0] for n in onnx.load(str(float_path)).graph.node if n.op_type == "Relu")
    assert cache["data"][relu]["lowest"] == 0.0  # a ReLU output keeps all 256 uint8 levels: not made symmetric

    def no_second_pass(*_args, **_kw):
        raise AssertionError("calibration ran again")

    monkeypatch.setattr(activation_ranges, "collect", no_second_pass)
    ort_quantize(run, tmp_path / "b.onnx", [])
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


@pytest.mark.parametrize("target", ["cpu", "intel"])
def test_percentile_sets_the_clip_on_every_target(tiny_onnx, calib, tmp_path, target):
    """--percentile reaches edge-fer's histograms (ORT) and NNCF's mean-quantile estimator (intel): keeping less of
    |x| shrinks the activation ranges; the report names the percentile; other methods refuse it."""
    from edge_fer.quantize.activation_ranges import PERCENTILE

    def ranges(out: Path) -> dict[str, float]:
        if target == "cpu":
            model = onnx.load(str(out))
            init = {t.name: float(np.asarray(onnx.numpy_helper.to_array(t)).max()) for t in model.graph.initializer}
            return {n.name: init[n.input[1]] for n in model.graph.node
                    if n.op_type == "QuantizeLinear" and n.input[1] in init}
        import openvino as ov
        return {op.get_friendly_name(): float(op.input_value(2).get_node().get_data().max())
                for op in ov.Core().read_model(str(out)).get_ops() if op.get_type_name() == "FakeQuantize"
                and op.input_value(0).get_node().get_type_name() != "Constant"}

    ext = "xml" if target == "intel" else "onnx"
    wide = run(tiny_onnx, tmp_path / f"wide.{ext}", calib, target=target)
    narrow = run(tiny_onnx, tmp_path / f"narrow.{ext}", calib, target=target, method="percentile", percentile=99.0)
    assert wide["percentile"] == PERCENTILE and narrow["percentile"] == 99.0
    a, b = ranges(tmp_path / f"wide.{ext}"), ranges(tmp_path / f"narrow.{ext}")
    shared = sorted(set(a) & set(b))
    assert shared and all(b[k] <= a[k] + 1e-9 for k in shared) and sum(b[k] < a[k] for k in shared) > len(shared) // 2
    with pytest.raises(EdgeFerError, match=r"--percentile 99\.9: it sets --method percentile"):
        run(tiny_onnx, tmp_path / f"x.{ext}", calib, target=target, method="minmax", percentile=99.9)
    with pytest.raises(EdgeFerError, match="above 50 and up to 100"):
        run(tiny_onnx, tmp_path / f"x.{ext}", calib, target=target, percentile=101.0)


def _max_int_weight(path: Path) -> int:
    """Largest |quantized weight| in a QDQ graph (int8 initializers feeding DequantizeLinear)."""
    model = onnx.load(str(path))
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return max(int(np.abs(init[n.input[0]].astype(np.int32)).max()) for n in model.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in init and init[n.input[0]].dtype == np.int8)


def test_weight_range_follows_the_cpu(tiny_onnx, calib, tmp_path, monkeypatch):
    from edge_fer import platform as hostcpu
    monkeypatch.setattr(hostcpu, "has_int8_dot_product", lambda: False)  # an AVX2 host (this one, today)
    report = run(tiny_onnx, tmp_path / "avx2.onnx", calib, target="cpu")
    assert report["reduce_range"]["enabled"] and "lacks VNNI" in report["reduce_range"]["reason"]
    assert _max_int_weight(tmp_path / "avx2.onnx") <= 64  # 7-bit weights: no int16 saturation in vpmaddubsw
    monkeypatch.setattr(hostcpu, "has_int8_dot_product", lambda: True)  # a VNNI host
    report = run(tiny_onnx, tmp_path / "vnni.onnx", calib, target="cpu")
    assert not report["reduce_range"]["enabled"] and _max_int_weight(tmp_path / "vnni.onnx") == 127
    report = run(tiny_onnx, tmp_path / "forced.onnx", calib, target="cpu", reduce_range=True)
    assert report["reduce_range"] == {"enabled": True, "reason": "as asked (--reduce-range/--full-range)"}
    report = run(tiny_onnx, tmp_path / "trt.onnx", calib, target="jetson", reduce_range=True)
    assert not report["reduce_range"]["enabled"]  # TensorRT accumulates in int32: never narrowed


def test_jetson_follows_tensorrt_qdq_rules(tiny_onnx, calib, tmp_path):
    report = run(tiny_onnx, tmp_path / "j.onnx", calib, target="jetson")
    assert report["tensorrt_qdq_check"] == "passed"
    proto = onnx.load(str(tmp_path / "j.onnx"))
    assert check_tensorrt_qdq(proto) == []
    assert OrtRunner.open(tmp_path / "j.onnx").precision == "int8"
    # the cpu flavour (uint8 asymmetric activations) breaks them
    run(tiny_onnx, tmp_path / "c.onnx", calib, target="cpu")
    problems = check_tensorrt_qdq(onnx.load(str(tmp_path / "c.onnx")))
    assert any("zero point" in p for p in problems)
    # so do per-tensor weights and weight scales along the wrong axis
    run(tiny_onnx, tmp_path / "t.onnx", calib, target="jetson", per_channel=True)
    dq = next(n for n in proto.graph.node if n.op_type == "DequantizeLinear"
              and any(a.name == "axis" for a in n.attribute))
    next(a for a in dq.attribute if a.name == "axis").i = 1
    assert any("axis 1" in p for p in check_tensorrt_qdq(proto))
    with pytest.raises(EdgeFerError, match="TensorRT rules"):
        run(tiny_onnx, tmp_path / "pt.onnx", calib, target="jetson", per_channel=False)


def test_jetson_quantizes_convolution_inputs_only(tiny_onnx, calib, tmp_path):
    """NVIDIA's placement: each Q/DQ pair is there for a Conv input (other readers of that tensor share it);
    CBAM's spatial-attention convs and (by default) the depthwise convs stay float."""
    from edge_fer.quantize.exclude import depthwise_convs
    from edge_fer.quantize.tensorrt_qdq import spatial_attention_convs

    report = run(tiny_onnx, tmp_path / "j.onnx", calib, target="jetson")
    proto = onnx.load(str(tmp_path / "j.onnx"))
    readers: dict[str, set[str]] = {}
    for n in proto.graph.node:
        for i in n.input:
            readers.setdefault(i, set()).add(n.op_type)
    dqs = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    assert dqs and all("Conv" in readers[n.output[0]] for n in dqs)
    spatial = spatial_attention_convs(onnx.load(str(tiny_onnx)))
    depthwise = depthwise_convs(onnx.load(str(tiny_onnx)))
    assert len(spatial) == 4  # one per CBAM block of the seed's stack
    assert len(depthwise) == 9 and report["depthwise"] == "float"  # one per block of the seed's stack
    convs = {n.name: n for n in proto.graph.node if n.op_type == "Conv"}
    producer = {o: n for n in proto.graph.node for o in n.output}
    quantized = {name for name, n in convs.items() if producer.get(n.input[0], n).op_type == "DequantizeLinear"}
    assert quantized == set(convs) - set(spatial) - set(depthwise)
    assert {k["node"] for k in report["jetson_float"]} == set(spatial) | set(depthwise)
    assert check_tensorrt_qdq(proto) == []
    report = run(tiny_onnx, tmp_path / "j8.onnx", calib, target="jetson", depthwise="int8")
    proto = onnx.load(str(tmp_path / "j8.onnx"))
    producer = {o: n for n in proto.graph.node for o in n.output}
    assert all(producer[n.input[0]].op_type == "DequantizeLinear" for n in proto.graph.node if n.name in depthwise)
    assert {k["node"] for k in report["jetson_float"]} == set(spatial)


@pytest.mark.parametrize("target,default", [("cpu", "int8"), ("intel", "float")])
def test_depthwise_default_and_choice(tiny_onnx, calib, tmp_path, target, default):
    """--depthwise: each target's measured default, the other choice on request, both in the report."""
    import openvino as ov

    from edge_fer.quantize.exclude import depthwise_convs

    depthwise = set(depthwise_convs(onnx.load(str(tiny_onnx))))
    for choice in ("int8", "float"):
        out = tmp_path / f"{choice}.{'xml' if target == 'intel' else 'onnx'}"
        report = run(tiny_onnx, out, calib, target=target, **({} if choice == default else {"depthwise": choice}))
        assert report["depthwise"] == choice
        kept = {k["node"]: k["reason"] for k in report[f"{target}_float"]}
        assert (set(kept) >= depthwise) == (choice == "float")
        if target == "intel":  # OpenVINO runs a depthwise conv as GroupConvolution; FakeQuantize feeds it if int8
            ops = ov.Core().read_model(str(out)).get_ops()
            fed = {op.input_value(0).get_node().get_type_name() for op in ops
                   if op.get_type_name() == "GroupConvolution"}
            assert (fed == {"FakeQuantize"}) if choice == "int8" else ("FakeQuantize" not in fed)
        else:
            proto = onnx.load(str(out))
            producer = {o: n.op_type for n in proto.graph.node for o in n.output}
            dq = {producer.get(n.input[1]) == "DequantizeLinear" for n in proto.graph.node if n.name in depthwise}
            assert dq == {choice == "int8"}
    with pytest.raises(EdgeFerError, match="--depthwise 'fp16'"):
        run(tiny_onnx, tmp_path / "x.onnx", calib, target=target, depthwise="fp16")


def test_intel_loads_in_openvino(tiny_onnx, calib, tmp_path):
    from edge_fer.backends.openvino_backend import OpenVinoRunner, rt_info_strings

    report = run(tiny_onnx, tmp_path / "ov", calib, target="intel")
    xml = tmp_path / "ov.xml"
    assert report["output"] == str(xml) and xml.with_suffix(".bin").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ov.bin", "ov.json", "ov.xml"]  # no temp leftovers
    runner = OpenVinoRunner.open(xml)
    assert runner.precision == "int8" and runner.info.classes == CLASSES
    assert runner(preprocess(calib[0][:2], runner.info.preprocessing)).shape == (2, 8)
    import openvino as ov
    props = rt_info_strings(ov.Core().read_model(str(xml)))
    assert props["edge_fer.precision"] == "int8" and props["edge_fer.img_size"] == "64"
    assert any(op.get_type_name() == "FakeQuantize" for op in ov.Core().read_model(str(xml)).get_ops())
    again = tmp_path / "again"
    again.mkdir()
    run(tiny_onnx, again / "ov.xml", calib, target="intel")
    for suffix in (".xml", ".bin"):
        assert (again / "ov.xml").with_suffix(suffix).read_bytes() == xml.with_suffix(suffix).read_bytes()


def test_intel_accuracy_budget(tiny_onnx, calib, fer_mini, tmp_path):
    val = tmp_path / "val"
    for sub in sorted((fer_mini / "val").iterdir())[:3]:
        (val / sub.name).mkdir(parents=True)
        for f in sorted(sub.iterdir())[:2]:
            shutil.copy(f, val / sub.name / f.name)
    report = run(tiny_onnx, tmp_path / "ov.xml", calib, target="intel", max_drop=100.0, val=val)
    assert report["val"]["n"] == 6 and "kept_float" in report
    assert report["val"]["float_accuracy"] - report["val"]["int8_accuracy"] <= 1.0


def test_exclude_by_op_type_and_name(tiny_onnx, calib, tmp_path):
    conv = next(n.name for n in onnx.load(str(tiny_onnx)).graph.node if n.op_type == "Conv")
    report = run(tiny_onnx, tmp_path / "e.onnx", calib, target="cpu", exclude=[conv])
    assert report["excluded"] == [conv]
    report = run(tiny_onnx, tmp_path / "e.onnx", calib, target="cpu", exclude=["Conv"])
    model = onnx.load(str(tmp_path / "e.onnx"))
    producer = {o: n for n in model.graph.node for o in n.output}
    assert all(producer.get(n.input[1]) is None or producer[n.input[1]].op_type != "DequantizeLinear"
               for n in model.graph.node if n.op_type == "Conv")
    report = run(tiny_onnx, tmp_path / "e-intel.xml", calib, target="intel", exclude=[conv])  # e.json: e.onnx's
    assert report["excluded"] in ([conv], [conv + "/WithoutBiases"])
    # a biased Conv named as in ONNX is that convolution in the IR (OpenVINO gave its bias Add the ONNX name)
    pw = next(n.name for n in onnx.load(str(tiny_onnx)).graph.node if n.op_type == "Conv" and "pw1" in n.name)
    report = run(tiny_onnx, tmp_path / "e-intel.xml", calib, target="intel", exclude=[pw, "Mul"])
    import openvino as ov
    ops = {op.get_friendly_name(): op for op in ov.Core().read_model(str(tmp_path / "e-intel.xml")).get_ops()}
    assert pw + "/WithoutBiases" in report["excluded"]
    assert ops[pw + "/WithoutBiases"].input_value(0).get_node().get_type_name() != "FakeQuantize"
    assert any(ops[n].get_type_name() == "Multiply" for n in report["excluded"])  # ONNX's Mul: OpenVINO's Multiply
    with pytest.raises(EdgeFerError, match="no node or op type"):
        run(tiny_onnx, tmp_path / "x.onnx", calib, target="cpu", exclude=["NoSuchLayer"])


def test_accuracy_budget_keeps_sensitive_layers_float(tiny_onnx, calib, fer_mini, tmp_path):
    val = tmp_path / "val"
    for sub in sorted((fer_mini / "val").iterdir()):
        (val / sub.name).mkdir(parents=True)
        for f in sorted(sub.iterdir())[:2]:
            shutil.copy(f, val / sub.name / f.name)
    # an unreachable budget walks the whole ladder: 1, 2, 4, ... layers kept float
    report = run(tiny_onnx, tmp_path / "b.onnx", calib, target="cpu", max_drop=-100.0, val=val)
    control = report["accuracy_control"]
    assert control["met"] is False and "not reachable" in control["note"]
    assert [t["kept_float"] for t in control["trials"]][:4] == [0, 1, 2, 4]
    assert all("SQNR" in k["reason"] for k in control["kept_float"])
    assert set(report["excluded"]) == {k["node"] for k in control["kept_float"]}
    assert report["val"]["n"] == 16
    report = run(tiny_onnx, tmp_path / "b.onnx", calib, target="cpu", max_drop=100.0, val=val)
    assert report["accuracy_control"]["met"] and report["excluded"] == []
    with pytest.raises(EdgeFerError, match="go together"):
        run(tiny_onnx, tmp_path / "b.onnx", calib, target="cpu", max_drop=1.0)


def test_bad_inputs(tiny_onnx, calib, tmp_path):
    truncated = tmp_path / "trunc.onnx"
    truncated.write_bytes(tiny_onnx.read_bytes()[:300])
    with pytest.raises(EdgeFerError, match=r"trunc\.onnx"):
        run(truncated, tmp_path / "o.onnx", calib)
    text = tmp_path / "notes.onnx"
    text.write_text("hello, not a model\n")
    with pytest.raises(EdgeFerError, match=r"notes\.onnx"):
        run(text, tmp_path / "o.onnx", calib)
    with pytest.raises(EdgeFerError, match="does not exist"):
        run(tiny_onnx, tmp_path / "missing" / "o.onnx", calib)
    bare = onnx.load(str(tiny_onnx))
    del bare.metadata_props[:]
    save_onnx(bare, tmp_path / "bare.onnx")
    with pytest.raises(EdgeFerError, match="--classes"):
        run(tmp_path / "bare.onnx", tmp_path / "o.onnx", calib)
    run(tmp_path / "bare.onnx", tmp_path / "o.onnx", calib, classes=",".join(CLASSES), img_size=64)
    assert OrtRunner.open(tmp_path / "o.onnx").info.classes == CLASSES
    with pytest.raises(EdgeFerError, match="already quantized"):
        run(tmp_path / "o.onnx", tmp_path / "oo.onnx", calib)
    with pytest.raises(EdgeFerError, match="target"):
        run(tiny_onnx, tmp_path / "o.onnx", calib, target="tpu")


def test_cli_calib_make_and_quantize(tiny_onnx, fer_mini, tmp_path):
    from typer.testing import CliRunner

    from edge_fer.cli import app

    manifest = tmp_path / "calib.txt"
    result = CliRunner().invoke(app, ["calib", "make", "--data", str(fer_mini / "val"), "--size", "24",
                                      "-o", str(manifest)])
    assert result.exit_code == 0, result.output
    assert len(manifest.read_text().splitlines()) == 2 + 24
    result = CliRunner().invoke(app, ["quantize", str(tiny_onnx), "--calib", str(manifest), "--target", "cpu",
                                      "-o", str(tmp_path / "q.onnx")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "q.json").read_text())["calibration"]["kind"] == "manifest"
    result = CliRunner().invoke(app, ["quantize", str(manifest), "--calib", str(manifest), "-o",
                                      str(tmp_path / "z.onnx")])
    assert result.exit_code == 1 and "calib.txt" in result.output


def test_manifest_helpers_used_by_quantize(fer_mini, tmp_path):
    entries = make_manifest(fer_mini / "val", 8, 0)
    write_manifest(tmp_path / "m.txt", fer_mini / "val", entries)
    images, desc = load_calibration(str(tmp_path / "m.txt"), 0, 0, SkipReport())
    assert desc["n_images"] == 8 and len(images) == 8


def test_minmax_ranges_cover_every_calibration_batch(tiny_onnx, tmp_path):
    """Only the first batch holds full-range images: the input's range must still reach +-1.

    ORT's chunked minmax (CalibMaxIntermediateOutputs, recipe <= 5) kept only the last chunk's
    ranges, so here it would have calibrated the input on flat grey images alone.
    """
    board = np.indices((64, 64)).sum(0) % 2 * 255  # a black/white checkerboard: -1 and +1 after preprocessing
    images = [board.astype(np.uint8)] * 10 + [np.full((64, 64), 128, np.uint8)] * 60
    run(tiny_onnx, tmp_path / "m.onnx", (images, {}), target="jetson", method="minmax")
    model = onnx.load(str(tmp_path / "m.onnx"))
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == model.graph.input[0].name)
    assert float(init[q.input[1]]) == pytest.approx(1.0 / 127, rel=0.01)
