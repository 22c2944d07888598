"""bench --host passes the options the CLI filled: every BenchOptions field either round-trips through
remote_args and the real CLI, or is named as staying local."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edge_fer.bench.options import LOCAL_OPTIONS, REMOTE_OPTIONS, BenchOptions, remote_args
from edge_fer.cli import app

# a value other than the default for every option a remote bench gets
CHANGED = {"device": "intel", "batches": (1, 4, 8), "warmup": 0, "max_drop": 0.25, "min_agreement": 0.5,
           "energy_seconds": 1.5, "seconds": None, "iters": 7, "threads": 3, "backends": ("openvino", "onnxruntime"),
           "precisions": ("int8", "fp32")}


def _parsed(args: list[str], tmp_path: Path, monkeypatch) -> BenchOptions:
    """The BenchOptions the real ``edge-fer bench`` CLI fills from ``args``."""
    seen: list[BenchOptions] = []

    def capture(checkpoint, opts, console, remote=None):
        seen.append(opts)
        raise typer.Exit(0)

    monkeypatch.setattr("edge_fer.bench.run.run", capture)
    result = CliRunner().invoke(app, ["bench", str(tmp_path / "model.safetensors"), *args])
    assert result.exit_code == 0, result.output
    return seen[0]


def test_every_option_is_remote_or_local():
    assert sorted(REMOTE_OPTIONS + LOCAL_OPTIONS) == sorted(f.name for f in fields(BenchOptions))
    assert set(CHANGED) == set(REMOTE_OPTIONS)


@pytest.mark.parametrize("seconds", [None, 2.5])
def test_remote_args_round_trip_through_the_cli(seconds, tmp_path, monkeypatch):
    opts = replace(BenchOptions(), **{**CHANGED, "seconds": seconds})
    assert all(getattr(opts, name) != getattr(BenchOptions(), name) for name in REMOTE_OPTIONS
               if name != "seconds" and not (seconds and name == "iters"))
    parsed = _parsed(remote_args(opts), tmp_path, monkeypatch)
    for name in REMOTE_OPTIONS:
        if seconds and name == "iters":  # --seconds replaces --iters: the remote side times by wall clock
            continue
        assert getattr(parsed, name) == getattr(opts, name), name
