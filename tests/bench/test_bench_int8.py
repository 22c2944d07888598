"""``edge-fer bench --int8 FILE``: a user's INT8 file benched beside bench's PTQ, gated in its place, and refused
where it cannot be compared with the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import damage_onnx  # tests/ is on sys.path
from typer.testing import CliRunner

from edge_fer.bench.options import gate_failures, row_role
from edge_fer.cli import app


def _cli(*args: str):
    return CliRunner().invoke(app, [*args])


@pytest.fixture()
def exported(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    result = _cli("export", str(tiny_checkpoint), "-o", str(tmp_path / "model.onnx"))
    assert result.exit_code == 0, result.output
    return tmp_path / "model.onnx"


def _quantize(onnx_path: Path, calib: Path, out: Path, *extra: str) -> Path:
    result = _cli("quantize", str(onnx_path), "--calib", str(calib), "-o", str(out), *extra)
    assert result.exit_code == 0, result.output
    return out


def _bench(ckpt: Path, tmp_path: Path, *extra: str):
    return _cli("bench", str(ckpt), "--iters", "3", "--warmup", "1", "--out", str(tmp_path / "out"),
                "--cache", str(tmp_path / "cache"), *extra)


def test_int8_file_runs_beside_ptq_and_is_gated_in_its_place(tiny_checkpoint, exported, fer_mini, tmp_path):
    mine = _quantize(exported, fer_mini / "train", tmp_path / "mine.onnx", "--target", "cpu", "--method", "minmax")
    data = ["--data", str(fer_mini / "test"), "--calib", str(fer_mini / "train"), "--int8", str(mine)]
    result = _bench(tiny_checkpoint, tmp_path, *data, "--max-drop", "100", "--min-agreement", "0")
    assert result.exit_code == 0, result.output
    assert "ORT int8 #1 " in result.output and "#1: --int8 " in result.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = res["rows"]
    assert list(rows)[-1] == "onnxruntime int8 (mine)"  # the file's row follows bench's own
    row = rows["onnxruntime int8 (mine)"]
    assert row["file"] == str(mine) and row["precision"] == "int8" and row["model_bytes"] > 0
    assert row["settings"]["quant_method"] == "minmax"  # the file's own recipe, from its metadata
    assert row["latency"][0]["median_ms"] > 0 and "accuracy" in row
    assert rows["onnxruntime int8"]["settings"]["quant_method"] == "percentile"  # bench's PTQ, still shown
    assert row_role("onnxruntime int8", rows["onnxruntime int8"]) == "compared"
    assert row_role("onnxruntime int8 (mine)", row) == "gated"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "onnxruntime int8: compared" in report and "| onnxruntime | int8 (mine) |" in report
    assert f"(--int8 `{mine}`)" in report

    # The file damaged: the gate now fails on it, whatever bench's PTQ (random weights) agrees on.
    damage_onnx(mine)
    failed = _bench(tiny_checkpoint, tmp_path, *data, "--max-drop", "100", "--min-agreement", "0.99")
    assert failed.exit_code == 1, failed.output
    error = next(line for line in failed.output.splitlines() if "parity gate failed" in line)
    assert "onnxruntime int8 (mine): agreement" in error and "onnxruntime int8:" not in error


def test_compared_and_baseline_rows_do_not_gate_but_the_file_does():
    rows = {"onnxruntime int8": {"passed": False, "role": "compared"},
            "onnxruntime int8-naive": {"passed": False},
            "onnxruntime int8 (mine)": {"passed": False},
            "onnxruntime fp32": {"passed": True}}
    assert list(gate_failures(rows)) == ["onnxruntime int8 (mine)"]
    rows["onnxruntime int8 (mine)"]["passed"] = True
    assert not gate_failures(rows)


def test_int8_file_is_refused_where_it_cannot_be_compared(tiny_checkpoint, exported, tiny_onnx, fer_mini, tmp_path):
    calib = fer_mini / "train"
    jetson = _quantize(exported, calib, tmp_path / "jetson.onnx", "--target", "jetson")
    other = _quantize(tiny_onnx, calib, tmp_path / "other.onnx", "--target", "cpu")  # another checkpoint's INT8
    cases = [(["--int8", str(exported)], "not an INT8 model"),
             (["--int8", str(jetson)], "quantized for --target jetson; bench it with --device jetson"),
             (["--int8", str(other)], "made from checkpoint sha256"),
             (["--int8", str(tmp_path / "model.xml")], "--device cpu runs onnxruntime models, not openvino"),
             (["--int8", str(tmp_path / "notes.md")], "--int8 " + str(tmp_path / "notes.md") + ": unknown model type"),
             (["--int8", str(tmp_path / "missing.onnx")], "missing.onnx: file not found"),
             (["--int8", str(jetson), "--img-size", "64,96"], "drop --img-size"),
             (["--int8", str(jetson), "--host", "me@example.invalid"], "drop --host")]
    for args, message in cases:
        result = _bench(tiny_checkpoint, tmp_path, "--calib", str(calib), *args)
        assert result.exit_code not in (0, None) and message in result.output, (args, result.output)
        assert not (tmp_path / "out" / "results.json").exists()  # refused before anything is written
