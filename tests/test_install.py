"""The dependency markers as a Jetson would evaluate them (offline; scripts/check_jetson_install.sh resolves
the same against PyPI with pip --dry-run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from edge_fer.backends.tensorrt_backend import MAX_MAJOR, MIN_VERSION

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# JetPack 6 (Ubuntu 22.04, Python 3.10) and 7 (Ubuntu 24.04, Python 3.12) on a Jetson, and the x86 dev machine
JETPACK6 = {"platform_machine": "aarch64", "sys_platform": "linux", "python_version": "3.10", "extra": "jetson"}
JETPACK7 = {**JETPACK6, "python_version": "3.12"}
X86 = {**JETPACK6, "platform_machine": "x86_64", "python_version": "3.11"}


def wanted(environment: dict[str, str], extra: bool = True) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    reqs += [Requirement(r) for r in PROJECT["optional-dependencies"]["jetson"]] if extra else []
    env = {**environment, "extra": "jetson" if extra else ""}
    return {r.name: r for r in reqs if r.marker is None or r.marker.evaluate(env)}


@pytest.mark.parametrize("jetpack", [JETPACK6, JETPACK7], ids=["jetpack6", "jetpack7"])
def test_jetson_keeps_jetpacks_torch_and_tensorrt(jetpack):
    reqs = wanted(jetpack)
    assert "torch" not in reqs and not any(n.startswith("tensorrt") for n in reqs) and "pycuda" not in reqs
    cuda = reqs["cuda-python"].specifier
    major = "12" if jetpack["python_version"] == "3.10" else "13"  # JetPack 6: CUDA 12.x, JetPack 7: CUDA 13
    assert f"{major}.9" in cuda and not any(f"{m}.0" in cuda for m in {"12", "13"} - {major})


def test_other_machines_still_get_torch():
    assert "torch" in wanted(X86, extra=False) and "cuda-python" not in wanted(X86)


def test_python_and_tensorrt_versions_agree_with_the_docs():
    """requires-python admits JetPack 6/7's system Pythons; JetPack 5 (3.8) is declared unsupported in the README."""
    assert PROJECT["requires-python"] == ">=3.10"
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Optional: Jetson"):readme.index("## INT8")]
    assert f"TensorRT {MIN_VERSION[0]}.{MIN_VERSION[1]}" in section and f"{MAX_MAJOR}.x" in section
    assert "JetPack 4.6" in section and "JetPack 5" in section
    block = re.search(r"```(?:bash|sh)\n(.*?)```", section, re.DOTALL)
    lines = [line for line in block[1].splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 3 and "--system-site-packages" in lines[0] and "[jetson]" in lines[1]
