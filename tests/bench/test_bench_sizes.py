"""``bench --img-size``: one checkpoint at several sizes, a report per size and the accuracy/latency frontier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_fer.artifacts.checkpoint import load_checkpoint
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.bench.sizes import frontier_points, parse_sizes
from edge_fer.cli import app


def test_bench_at_two_sizes_writes_a_frontier(tiny_checkpoint: Path, fer_mini: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = CliRunner().invoke(app, [
        "bench", str(tiny_checkpoint), "--img-size", "48,64", "--data", str(fer_mini / "test"), "--calib",
        str(fer_mini / "train"), "--precisions", "int8", "--iters", "3", "--warmup", "1", "--out", str(out),
        "--cache", str(cache), "--max-drop", "100", "--min-agreement", "0"])
    assert result.exit_code == 0, result.output
    assert "frontier:" in result.output
    frontier = json.loads((out / "frontier.json").read_text())
    assert frontier["sizes"] == [48, 64] and frontier["trained_img_size"] == 64
    rows = {"torch fp32", "onnxruntime int8", "onnxruntime int8-naive"}
    assert {(p["row"], p["img_size"]) for p in frontier["points"]} == {(r, s) for r in rows for s in (48, 64)}
    assert all(p["accuracy"] is not None and p["median_ms"] > 0 for p in frontier["points"])
    assert any(p["pareto"] for p in frontier["points"])
    for size in (48, 64):  # a full bench per size, at that size
        res = json.loads((out / f"{size}px" / "results.json").read_text())
        assert load_checkpoint(res["checkpoint"]).preprocessing.img_size == size
    resized = load_checkpoint(json.loads((out / "48px" / "results.json").read_text())["checkpoint"])
    assert resized.extra["resized_from"]["img_size"] == 64 and "metrics" not in resized.extra
    for name in ("frontier.md", "frontier.png"):
        assert (out / name).stat().st_size > 0


def test_pareto_marks_only_undominated_points() -> None:
    def row(acc: float, ms: float) -> dict:
        return {"accuracy": acc, "top1_agreement": 1.0, "latency": [{"median_ms": ms, "batch": 1}]}

    per_size = {64: {"rows": {"a": row(0.80, 1.0), "b": row(0.70, 2.0)}},
                112: {"rows": {"a": row(0.85, 3.0), "b": row(0.84, 4.0)}}}
    pareto = {(p["row"], p["img_size"]) for p in frontier_points(per_size) if p["pareto"]}
    assert pareto == {("a", 64), ("a", 112)}


@pytest.mark.parametrize("text", ["64,x", "16", "64,64", ""])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(EdgeFerError, match="--img-size"):
        parse_sizes(text)
