"""A bundle's build.sh asks the Jetson's edge-fer for the engine the CLI was asked for here: every
EngineSettings field round-trips through edge_fer_args and the real CLI, or is named as not passed."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edge_fer.build.bundle import BUNDLE_OPTIONS, edge_fer_args
from edge_fer.build.tensorrt import EngineSettings
from edge_fer.cli import app

NOT_PASSED = ("tensorrt", "implicit_int8", "calib_cache")  # refused or checked by build.sh (see BUNDLE_OPTIONS)


def _parsed(args: list[str], tmp_path: Path, monkeypatch) -> tuple[EngineSettings, bool]:
    """(settings, deepstream) that the real ``edge-fer build`` CLI hands the jetson build for ``args``."""
    seen: list[tuple[EngineSettings, bool]] = []

    def capture(job, log):
        seen.append((job.settings, job.deepstream))
        raise typer.Exit(0)

    monkeypatch.setattr("edge_fer.build.jetson.build_jetson", capture)
    result = CliRunner().invoke(app, ["build", str(tmp_path / args[0]), *args[1:]])
    assert result.exit_code == 0, result.output
    return seen[0]


def test_every_setting_is_passed_or_named():
    passed = {name for group in BUNDLE_OPTIONS for name in group} | {"timing_cache"}
    assert sorted(passed | set(NOT_PASSED)) == sorted(f.name for f in fields(EngineSettings))


@pytest.mark.parametrize("settings", [
    EngineSettings("int8", dla_core=1, gpu_fallback=True, workspace_mb=256, timing_cache="/far/away/trt.cache",
                   opt_batch=2, max_batch=2),
    EngineSettings("fp16", opt_batch=3, max_batch=16),
])
@pytest.mark.parametrize("deepstream", [False, True])
def test_build_sh_arguments_round_trip_through_the_cli(settings, deepstream, tmp_path, monkeypatch):
    parsed, parsed_deepstream = _parsed(edge_fer_args(settings, deepstream, has_source=False), tmp_path, monkeypatch)
    assert parsed_deepstream == deepstream
    for field in fields(EngineSettings):
        if field.name in NOT_PASSED:
            continue
        want = getattr(settings, field.name)
        if field.name == "timing_cache" and want:  # the bundled file, beside build.sh
            want = Path(want).name
        assert getattr(parsed, field.name) == want, field.name
