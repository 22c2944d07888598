"""Inference backends behind one small interface (:class:`Runner`), shared by bench and predict.

Each backend is one module, imported only when its artifact is opened, so a
missing optional runtime (TensorRT on a laptop) costs nothing until used.
"""

from __future__ import annotations

from pathlib import Path

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.backends.base import Runner

__all__ = ["Runner", "backend_for", "open_runner"]


def backend_for(path: Path | str) -> str:
    """The backend that runs an artifact, chosen by its file type."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in (".safetensors", ".json"):
        return "torch"
    if suffix == ".onnx":
        return "onnxruntime"
    if suffix in (".xml", ".bin"):
        return "openvino"
    if suffix in (".engine", ".plan", ".trt"):
        return "tensorrt"
    raise EdgeFerError(f"{path}: unknown model type {suffix!r}; give a checkpoint (.safetensors), "
                       ".onnx, OpenVINO .xml or TensorRT .engine")


def open_runner(path: Path | str, *, precision: str | None = None, device: str | None = None,
                threads: int | None = None) -> Runner:
    """Open any edge-fer artifact as a Runner; ``precision``/``device`` mean what the backend says."""
    kind = backend_for(path)
    if not Path(path).exists():
        raise EdgeFerError(f"{path}: file not found")
    if kind == "torch":
        from edge_fer.backends.torch_backend import TorchRunner
        return TorchRunner.open(path, device=device or "cpu", threads=threads)
    if kind == "onnxruntime":
        from edge_fer.backends.onnxruntime_backend import OrtRunner
        return OrtRunner.open(path, threads=threads)
    if kind == "openvino":
        from edge_fer.backends.openvino_backend import OpenVinoRunner
        return OpenVinoRunner.open(path, precision=precision, device=device or "CPU", threads=threads)
    from edge_fer.backends.tensorrt_backend import TensorRTRunner
    return TensorRTRunner.open(path)
