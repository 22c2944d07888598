"""A small real bench (ORT, torch, OpenVINO), its JSON/report files and the parity gate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import damage_onnx  # tests/ is on sys.path
from fakes import fake_tensorrt
from typer.testing import CliRunner

from edge_fer.bench.cache import record_cache_entry
from edge_fer.bench.measure import verdict
from edge_fer.cli import app
from edge_fer.quantize.run import RECIPE


def _bench(ckpt: Path, tmp_path: Path, *extra: str):
    return CliRunner().invoke(app, ["bench", str(ckpt), "--iters", "3", "--warmup", "1", "--out",
                                    str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), *extra])


def test_cpu_bench_writes_results_and_a_damaged_int8_fails_the_gate(tiny_checkpoint: Path, fer_mini: Path,
                                                                     tmp_path: Path) -> None:
    data = ["--data", str(fer_mini / "test"), "--calib", str(fer_mini / "train")]
    result = _bench(tiny_checkpoint, tmp_path, *data, "--max-drop", "100", "--min-agreement", "0")
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["calibration"]["kind"] == "folder" and res["calibration"]["source"] == str(fer_mini / "train")
    assert set(res["rows"]) == {"torch fp32", "onnxruntime fp32", "onnxruntime int8", "onnxruntime int8-naive"}
    for row in res["rows"].values():
        lat = row["latency"][0]
        assert lat["batch"] == 1 and lat["iters"] == 3 and lat["median_ms"] > 0 and "speedup_vs_torch" in lat
        assert {"accuracy", "accuracy_drop_pt", "top1_agreement", "max_abs_logit_diff", "kl_softmax",
                "float_top2_gap_median", "per_class_delta_pt", "passed"} <= set(row)
    assert res["rows"]["onnxruntime fp32"]["max_abs_logit_diff"] < 1e-3
    assert res["rows"]["onnxruntime int8"]["settings"]["quant_method"] == "percentile"  # --target cpu's default
    naive = res["rows"]["onnxruntime int8-naive"]  # random weights: some images flip, and they were near-ties
    if naive["top1_agreement"] < 1:
        assert naive["flipped_top2_gap_median"] <= res["rows"]["torch fp32"]["float_top2_gap_median"]
    for name in ("report.md", "latency.png", "confusion_float_vs_int8.png", "per_class_delta.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0

    # Damage the cached INT8 model: the same bench with a real gate must now fail (exit 1).
    cached = next(p for p in (tmp_path / "cache").rglob("fernet-int8-*.onnx") if "naive" not in p.name)
    model = damage_onnx(cached)
    damaged = cached.read_bytes()
    rerun = _bench(tiny_checkpoint, tmp_path, *data, "--max-drop", "100", "--min-agreement", "0")
    assert rerun.exit_code == 0, rerun.output
    assert cached.read_bytes() != damaged  # no longer matched its record: rebuilt, not benchmarked damaged
    # Damaged the same way but recorded as built (a quantizer that really produced it): the gate catches it.
    record = cached.with_name(cached.name + ".cache.json")
    source = json.loads(record.read_text())["source"]
    onnx.save_model(model, str(cached))
    record_cache_entry(cached, source)
    failed = _bench(tiny_checkpoint, tmp_path, *data, "--min-agreement", "0.99")
    assert failed.exit_code == 1
    assert "parity gate failed" in failed.output and "onnxruntime int8" in failed.output


def test_intel_bench_on_embedded_faces_reports_real_precisions(tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()  # a reused --out: a labelled cpu run's plot must not sit beside this report
    (tmp_path / "out" / "confusion_float_vs_int8.png").write_bytes(b"stale")
    (tmp_path / "out" / "notes.txt").write_text("the user's own file")
    result = _bench(tiny_checkpoint, tmp_path, "--device", "intel", "--min-agreement", "0")
    assert result.exit_code == 0, result.output
    assert result.output.count("no --calib given") == 1  # each warning once per run
    assert "median ms" in result.output and "…" not in result.output  # the CLI's table, off a terminal: 80 columns
    assert result.output.rstrip().splitlines()[-1].startswith("recommendation: ")  # the answer comes last
    assert not (tmp_path / "out" / "confusion_float_vs_int8.png").exists()
    assert (tmp_path / "out" / "notes.txt").exists()
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = res["rows"]
    assert res["recommendation"]["row"] in rows and rows[res["recommendation"]["row"]]["passed"]
    assert rows["openvino fp32"]["settings"]["inference_precision"] == "f32"
    assert rows["openvino bf16"]["settings"]["inference_precision"] in ("bf16", "f32")  # f32 where no bf16 HW
    assert rows["openvino int8"]["precision"] == "int8"
    settings = rows["openvino int8"]["settings"]  # how it was quantized, from the IR's metadata
    assert (settings["quant_target"], settings["quant_method"]) == ("intel", "percentile")
    assert "quant_method" not in rows["openvino fp32"]["settings"]
    assert rows["openvino default"]["precision"] in ("bf16", "fp32")  # OpenVINO's own choice, read back
    assert all(r["model_bytes"] > 0 and "rss_open_mb" in r for r in rows.values())
    assert "accuracy" not in rows["openvino fp32"]  # unlabelled faces: agreement only
    assert rows["openvino fp32"]["top1_agreement"] == 1.0


def test_verdict_names_the_failing_figure() -> None:
    ok, why = verdict({"top1_agreement": 0.995, "accuracy_drop_pt": 0.2}, 0.5, 0.99)
    assert ok and why == "ok"
    ok, why = verdict({"top1_agreement": 0.95, "accuracy_drop_pt": 0.8}, 0.5, 0.99)
    assert not ok and "agreement" in why and "drop" in why


def test_backends_precisions_and_seconds_narrow_the_run(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = _bench(tiny_checkpoint, tmp_path, "--precisions", "int8", "--seconds", "0.3", "--batch", "1,2",
                    "--min-agreement", "0", "--wide")
    assert result.exit_code == 0, result.output
    assert "p90" in result.output  # --wide: every column
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["rows"]) == {"torch fp32", "onnxruntime int8", "onnxruntime int8-naive"}
    assert res["timing"] == {"warmup": 1, "iters": None, "seconds": 0.3,
                             "interleaved": "random order per round (seed 0)"}
    for row in res["rows"].values():
        assert [lat["batch"] for lat in row["latency"]] == [1, 2] and all(lat["iters"] >= 1 for lat in row["latency"])
    assert "0.3 s of interleaved rounds" in (tmp_path / "out" / "report.md").read_text()
    bad = _bench(tiny_checkpoint, tmp_path, "--backends", "openvino")
    assert bad.exit_code == 1 and "--backends openvino: --device cpu benchmarks onnxruntime" in bad.output


FAKE_TEGRASTATS = """#!/usr/bin/env bash
# tegrastats as JetPack 6 prints it on an Orin Nano, one line per --interval ms
interval=1000
while [ $# -gt 0 ]; do case "$1" in --interval) interval=$2; shift 2;; *) shift;; esac; done
while true; do
  echo "RAM 2448/7620MB (lfb 4x4MB) SWAP 0/3810MB (cached 0MB) CPU [3%@729,1%@729] GR3D_FREQ 47%@[624] \
cpu@47.5C gpu@46.8C VDD_IN 6000mW/5120mW VDD_CPU_GPU_CV 1820mW/1203mW VDD_SOC 1611mW/1443mW"
  sleep "$(awk "BEGIN{print $interval/1000}")"
done
"""
FAKE_TOOLS = {
    "tegrastats": FAKE_TEGRASTATS,
    "nvpmodel": "#!/bin/sh\necho 'NV Power Mode: 15W'\necho 0\n",
    "jetson_clocks": "#!/bin/sh\necho 'GPU MinFreq=306000000 MaxFreq=624750000 CurrentFreq=306000000'\n",
}


def test_jetson_bench_runs_engines_and_samples_power(tiny_checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    """TensorRT through the faithful fake (it runs the ONNX graph), tegrastats/nvpmodel as fake executables."""
    fake_tensorrt.install(monkeypatch)
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, text in FAKE_TOOLS.items():
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    try:
        result = _bench(tiny_checkpoint, tmp_path, "--device", "jetson", "--energy-seconds", "0.4",
                        "--min-agreement", "0")
    finally:
        fake_tensorrt.uninstall()
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["rows"]) == {"torch fp32", "tensorrt fp16", "tensorrt int8"}
    assert res["rows"]["tensorrt int8"]["settings"]["tensorrt_version"] == "10.3.0"
    assert res["jetson"]["nvpmodel"] == "15W" and res["jetson"]["tegrastats"] == "sampled"
    assert res["jetson"]["jetson_clocks"] == "off (GPU clock scales)"
    for row in res["rows"].values():
        energy = row["latency"][0]["energy"]
        assert energy["samples"] >= 2 and energy["power_mw"] == 6000.0 and energy["gpu_load_pct"] == 47.0
        assert energy["energy_mj_per_image"] == pytest.approx(6000.0 * energy["seconds"] / energy["images"], rel=5e-3)
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.engine")) == [
        "fernet-fp16.engine", f"fernet-int8-embedded-r{RECIPE}.engine"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Energy (tegrastats" in report and "nvpmodel 15W" in report


def test_interleaved_rounds_shuffle_so_no_backend_always_follows_the_same_one() -> None:
    from edge_fer.bench.measure import time_interleaved

    calls: list[str] = []
    runners = {name: (lambda batch, name=name: calls.append(name)) for name in "abcd"}
    result = time_interleaved(runners, np.zeros((1, 3, 8, 8), np.float32), warmup=0, iters=40)
    timed = calls[4:]  # after the four cold calls
    after_a = {timed[i + 1] for i in range(len(timed) - 1) if timed[i] == "a"}
    assert {"b", "c", "d"} <= after_a  # a rotation of one fixed order would always put "b" after "a"
    assert all(sorted(timed[i:i + 4]) == list("abcd") for i in range(0, len(timed), 4))  # each round runs all once
    assert all(len(r.times_ms) == 40 for r in result.values())


def _recorded(device: str) -> dict:
    """A recorded FER+ bench (real figures, real row names), with the recommendation a bench now adds."""
    from edge_fer.bench.measure import recommend

    path = next((Path(__file__).parents[2] / "benchmarks" / "results").glob(f"*-{device}.json"))
    results = json.loads(path.read_text())
    results["recommendation"] = recommend(results["rows"])
    return results


@pytest.mark.parametrize("device", ["cpu", "intel"])
def test_terminal_table_fits_80_columns_without_truncating_a_cell(device: str) -> None:
    from rich.console import Console

    from edge_fer.bench.options import row_role
    from edge_fer.bench.report import engine_label, results_table

    results = _recorded(device)
    results["rows"]["onnxruntime fp32"]["passed"] = False  # a row failing both figures: the longest verdict
    ptq = "onnxruntime int8" if device == "cpu" else "openvino int8"  # and a user's --int8 file beside PTQ
    number = 1 + sum("file_number" in row for row in results["rows"].values())  # the cpu recording has one
    results["rows"][ptq.replace("int8", "int8 (fernet-cpu-qat-2x16000)")] = {
        **results["rows"][ptq], "file": "a/long/path/to/fernet-cpu-qat-2x16000.onnx", "file_number": number}
    results["rows"][ptq] = {**results["rows"][ptq], "role": "compared", "passed": False, "verdict": "agreement"}
    results["rows"]["onnxruntime fp32"]["verdict"] = "agreement 90.00% < 99.00%; accuracy drop 2.00 pt > 0.50 pt"
    console = Console(width=80, record=True)
    console.print(results_table(results))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    for name, row in results["rows"].items():
        for lat in row["latency"]:
            line = next(ln for ln in lines if ln.lstrip().startswith(engine_label(name, row) + " ") and
                        f" {lat['median_ms']:.2f} " in ln)
            assert f"{lat['speedup_vs_torch']:.2f}x" in line and f"{row['top1_agreement']:.1%}" in line
            assert format(row["accuracy_drop_pt"], "+.2f") in line
            role = row_role(name, row)
            assert ("pass" if row["passed"] else role if role != "gated" else "FAIL") in line
    assert f"#{number}: --int8 a/long/path/to/fernet-cpu-qat-2x16000.onnx" in text  # the short label's file, in full
    failing = next(ln for ln in lines if ln.lstrip().startswith("ORT fp32 "))
    assert failing.count("✗") == 2  # both failing figures are marked

    wide = Console(width=200, record=True)
    wide.print(results_table(results, wide=True))
    assert "accuracy drop 2.00 pt > 0.50 pt" in wide.export_text()  # --wide keeps the full reasons


def test_recommendation_is_the_fastest_row_within_the_gate() -> None:
    from edge_fer.bench.measure import recommend
    from edge_fer.bench.report import recommendation_line

    def row(passed: bool, *ms: float) -> dict:
        latency = [{"batch": b, "median_ms": m, "speedup_vs_torch": 10 / m} for b, m in zip((1, 8), ms, strict=True)]
        return {"passed": passed, "top1_agreement": 0.995 if passed else 0.9, "accuracy_drop_pt": 0.1,
                "precision": "fp32" if ms[0] == 10 else "int8", "latency": latency}

    rows = {"torch fp32": row(True, 10, 40), "onnxruntime int8": row(True, 4, 20), "openvino int8": row(False, 2, 8),
            "onnxruntime int8-naive": row(True, 5, 15)}
    rec = recommend(rows)
    assert rec["row"] == "onnxruntime int8" and rec["batch"] == 1 and rec["median_ms"] == 4
    assert rec["by_batch"] == {"1": "onnxruntime int8", "8": "onnxruntime int8-naive"}  # failing openvino never wins
    line = recommendation_line({"recommendation": rec, "rows": rows, "gate": {"max_drop_pt": 0.5,
                                                                           "min_agreement": 0.99}})
    assert line.startswith("recommendation: ORT int8, the fastest engine within the gate: 4.00 ms at batch 1, 2.50x")
    assert "batch 8: ORT int8-naive" in line
    only_torch = recommend({"torch fp32": rows["torch fp32"], "openvino int8": rows["openvino int8"]})
    assert only_torch["row"] == "torch fp32"


def test_baseline_rows_are_shown_but_do_not_gate() -> None:
    """ORT's stock quantize_static and OpenVINO's own precision are comparisons, not edge-fer's engines: their
    failing verdict is reported, and bench's exit status follows the other rows alone."""
    from rich.console import Console

    from edge_fer.bench.options import BASELINES, gate_failures, gate_passed
    from edge_fer.bench.report import report_markdown, results_table

    results = _recorded("cpu")
    rows = results["rows"]
    for name, row in rows.items():
        row.pop("role", None)  # the recording's PTQ row is "compared" beside its --int8 file: gated here
        row["passed"], row["verdict"] = (False, "agreement 92.84% < 99.00%") if name in BASELINES else (True, "ok")
    results["passed"] = gate_passed(rows)
    assert results["passed"] and "onnxruntime int8-naive" in BASELINES and "openvino default" in BASELINES
    md = report_markdown(results)
    assert "**PASS** (onnxruntime int8-naive: baseline; shown but not gated)" in md
    assert "agreement 92.84% < 99.00% (baseline, not gated)" in md
    console = Console(width=80, record=True)
    console.print(results_table(results))
    naive = [ln for ln in console.export_text().splitlines() if ln.lstrip().startswith("ORT int8-naive ")]
    assert naive and all(ln.rstrip().endswith("baseline") for ln in naive)
    rows["onnxruntime int8"]["passed"] = False
    assert not gate_passed(rows) and list(gate_failures(rows)) == ["onnxruntime int8"]  # what the error line names
