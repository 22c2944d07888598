"""edge-fer's TensorRT calls against the real Python API of every supported release.

The API lists (tests/fakes/tensorrt_api/*.json) were recorded by scripts/tensorrt_api.py from
NVIDIA's bindings wheels (imported over stub libraries, introspected).  Three checks:
every ``trt.X`` / ``trt.X.Y`` in edge-fer's source exists in the releases it is used on (names
missing from a release must be the version-gated ones of build_tensorrt.Flavor, listed here);
the strict fake invents no API; and a representative build + run per release touches only
names that release has (recorded in tests/fakes/tensorrt_api/used.json, the readable list of what
edge-fer calls on each release's objects).
"""

from __future__ import annotations

import ast
import inspect
import json
import os
from pathlib import Path

import pytest
from fakes import fake_tensorrt

from edge_fer.build.jetson import JetsonBuild, build_jetson
from edge_fer.build.tensorrt import EngineSettings, Flavor
from edge_fer.data.faces import embedded_faces
from edge_fer.data.preprocessing import preprocess

SOURCE = Path(__file__).resolve().parents[2] / "edge_fer"
# names edge-fer uses that a release lacks, each behind a Flavor check (strongly_typed, explicit_batch_flag,
# implicit_int8); anything else missing from a release is a bug this test catches
GATED = {
    "8.6.1": {"NetworkDefinitionCreationFlag.STRONGLY_TYPED"},
    "10.3.0": set(),
    "11.4.0.106": {"BuilderFlag.FP16", "BuilderFlag.INT8", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
                   "IInt8EntropyCalibrator2", "IInt8EntropyCalibrator2.__init__"},
}


def used_names() -> set[str]:
    """``X`` and ``X.Y`` of every ``trt.X[.Y]`` expression in edge_fer (``trt`` is the module everywhere)."""
    names: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt":
                names.add(node.attr)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and isinstance(
                    node.value.value, ast.Name) and node.value.value.id == "trt":
                names.add(f"{node.value.attr}.{node.attr}")
    return names - {"__version__"}


def exists(surface: dict, name: str) -> bool:
    owner, _, member = name.partition(".")
    if not member:
        return owner in surface["module"]
    if owner in surface["enums"]:
        return member in surface["enums"][owner]
    return (member == "__init__" and owner in surface["classes"]) or member in surface["classes"].get(owner, {})


def test_recorded_surfaces_are_the_real_wheels():
    for version in fake_tensorrt.SUPPORTED:
        surface = fake_tensorrt.api(version)
        assert surface["version"] == version and len(surface["source"]["sha256"]) == 64
        assert version in surface["source"]["wheel"] and len(surface["classes"]) > 100
    # the facts the per-version build logic rests on, read from the bindings themselves
    old, ten, eleven = (fake_tensorrt.api(v) for v in fake_tensorrt.SUPPORTED)
    assert {"FP16", "INT8"} <= set(old["enums"]["BuilderFlag"]) and {"FP16", "INT8"} <= set(ten["enums"]["BuilderFlag"])
    assert not {"FP16", "INT8", "BF16"} & set(eleven["enums"]["BuilderFlag"])
    assert "EXPLICIT_BATCH" not in eleven["enums"]["NetworkDefinitionCreationFlag"]
    assert eleven["enums"]["NetworkDefinitionCreationFlag"]["STRONGLY_TYPED"] == 0  # was bit 1 in 10.x
    assert "int8_calibrator" not in eleven["classes"]["IBuilderConfig"]
    assert "IInt8EntropyCalibrator2" not in eleven["module"]
    assert "platform_has_fast_fp16" not in eleven["classes"]["Builder"]
    # the inspector's context property is execution_context in all three (the docstrings say "context")
    assert all("execution_context" in s["classes"]["EngineInspector"] for s in (old, ten, eleven))
    assert all("(self: tensorrt.tensorrt.IBuilderConfig, cache: tensorrt.tensorrt.ITimingCache, ignore_mismatch: "
               "bool) -> bool" in s["classes"]["IBuilderConfig"]["set_timing_cache"] for s in (old, ten, eleven))


@pytest.mark.parametrize("version", fake_tensorrt.SUPPORTED)
def test_every_trt_name_in_the_source_exists_or_is_version_gated(version):
    used = used_names()
    assert {"BuilderFlag.FP16", "DeviceType.DLA", "OnnxParser", "LayerInformationFormat.JSON"} <= used
    missing = {name for name in used if not exists(fake_tensorrt.api(version), name)}
    assert missing == GATED[version]
    assert all(any(exists(fake_tensorrt.api(v), n) for v in fake_tensorrt.SUPPORTED) for n in used)


def test_calibrator_overrides_are_the_real_method_names():
    from edge_fer.build import tensorrt as build_tensorrt

    source = inspect.getsource(build_tensorrt._entropy_calibrator)
    methods = {n.name for n in ast.walk(ast.parse(source.strip())) if isinstance(n, ast.FunctionDef)}
    overrides = methods - {"_entropy_calibrator", "__init__"}
    for version in ("8.6.1", "10.3.0"):
        assert overrides <= set(fake_tensorrt.api(version)["classes"]["IInt8EntropyCalibrator2"])


def test_the_fake_invents_no_api():
    """Every public attribute a fake class defines exists on the real class in some supported release."""
    real = [fake_tensorrt.api(v)["classes"] for v in fake_tensorrt.SUPPORTED]
    for cls in fake_tensorrt.TENSORRT_NAMES:
        if not isinstance(cls, type):
            continue
        own = {n for n in vars(cls) if not n.startswith("_")}
        invented = {n for n in own if not any(n in classes.get(cls._trt, {}) for classes in real)}
        assert invented == set(), f"{cls.__name__}: {sorted(invented)}"


def test_strict_fake_refuses_what_a_release_lacks(monkeypatch):
    trt = fake_tensorrt.install(monkeypatch, version="11.4.0.106")
    import tensorrt

    with pytest.raises(AttributeError, match="FP16"):
        tensorrt.BuilderFlag.FP16  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'IInt8EntropyCalibrator2'"):
        tensorrt.IInt8EntropyCalibrator2  # noqa: B018
    builder = tensorrt.Builder(tensorrt.Logger(tensorrt.Logger.WARNING))
    with pytest.raises(AttributeError, match="platform_has_fast_fp16"):
        builder.platform_has_fast_fp16  # noqa: B018
    with pytest.raises(AttributeError, match="int8_calibrator"):
        builder.create_builder_config().int8_calibrator = object()
    with pytest.raises(NotImplementedError, match="not emulated"):
        tensorrt.Refitter  # noqa: B018  (real in 11, not faked)
    assert trt.version == "11.4.0.106"
    fake_tensorrt.uninstall()


@pytest.mark.parametrize("version", fake_tensorrt.SUPPORTED)
def test_a_build_and_run_touch_only_the_releases_api(monkeypatch, tiny_onnx, tmp_path, version):
    from edge_fer.backends import open_runner

    state = fake_tensorrt.install(monkeypatch, version=version)
    settings = [EngineSettings("fp16", timing_cache=str(tmp_path / "cache")),
                EngineSettings("fp16", dla_core=0, gpu_fallback=True), EngineSettings("int8")]
    if Flavor.of(version).implicit_int8:
        settings.append(EngineSettings("int8", implicit_int8=True))
    for i, s in enumerate(settings):
        build_jetson(JetsonBuild(tiny_onnx, tmp_path / f"{i}.engine", s))
        runner = open_runner(tmp_path / f"{i}.engine")
        runner(preprocess(embedded_faces()[:2], runner.info.preprocessing))
    classes = fake_tensorrt.api(version)["classes"]
    assert state.accessed and all(name in classes[owner] for owner, name in state.accessed)
    touched = sorted(f"{owner}.{name}" for owner, name in state.accessed)
    fake_tensorrt.uninstall()
    record = Path(__file__).parents[1] / "fakes" / "tensorrt_api" / "used.json"
    if os.environ.get("EDGE_FER_RECORD_TRT_USED"):  # after a deliberate change: rerun with this set, review the diff
        data = json.loads(record.read_text()) if record.is_file() else {}
        record.write_text(json.dumps({**data, version: touched}, indent=1, sort_keys=True) + "\n")
    assert touched == json.loads(record.read_text())[version]
