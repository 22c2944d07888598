"""What a user gets from ``pip install``: a wheel that carries the reference model and works outside a clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    """The environment without this checkout on PYTHONPATH or a model override, so only the wheel is used."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGE_FER_MODEL")}
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    env["COLUMNS"] = "400"  # rich wraps at 80 columns off a terminal; the model line holds a long path
    return env


def _build_wheel(tmp: Path) -> Path:
    """Build from a copy of the sources, so the build leaves no build/ or egg-info in the checkout."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "edge_fer", src / "edge_fer", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "dist"), str(src)], check=True, env=_env(), cwd=tmp)
    (wheel,) = (tmp / "dist").glob("edge_fer-*.whl")
    return wheel


@pytest.mark.slow
def test_installed_wheel_has_the_model_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "edge_fer/models/fernet-ferplus/model.safetensors" in names
    assert "edge_fer/models/fernet-ferplus/model.json" in names

    # A fresh venv; its dependencies (torch, onnxruntime, ...) come from this interpreter's site-packages
    # through a .pth path line (not downloaded again). A plain path line runs no .pth files found there,
    # so an editable edge-fer installed in this environment stays invisible: only the wheel can answer.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, env=_env())

    work = tmp_path / "elsewhere"
    work.mkdir()
    edge_fer = venv / "bin" / "edge-fer"
    info = subprocess.run([edge_fer, "info"], cwd=work, env=_env(), capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    model_line = next(line for line in info.stderr.splitlines() if line.startswith("model"))
    assert str(site / "edge_fer" / "models" / "fernet-ferplus" / "model.safetensors") in model_line
    assert "card" in info.stderr  # the model card travels with the weights

    export = subprocess.run([edge_fer, "export", "-o", "fernet.onnx"], cwd=work, env=_env(), capture_output=True,
                            text=True)
    assert export.returncode == 0, export.stderr
    assert (work / "fernet.onnx").stat().st_size > 1e6
