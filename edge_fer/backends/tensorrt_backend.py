"""TensorRT backend: a serialized engine (``.engine``) plus its ``.engine.json`` sidecar, run with pycuda.

A TensorRT plan only runs on the GPU model and TensorRT version that built it, and
it carries no edge-fer metadata; both facts live in the sidecar written by
``edge-fer build --target jetson``.  The sidecar is checked *before* deserialising,
so a copied engine fails with "rebuild it" instead of TensorRT's generic refusal.

TensorRT and the CUDA binding (pycuda, else cuda-python: :mod:`.cuda_memory`) are
imported lazily (they exist only on the Jetson).  I/O uses the name-based tensor
API (TensorRT >= 8.5): one page-locked host buffer and one device buffer per
tensor, sized for the profile's largest batch, and ``execute_async_v3`` on a CUDA stream.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.backends.cuda_memory import CudaMemory, open_cuda

SIDECAR_SUFFIX = ".json"
MIN_VERSION = (8, 6)  # the oldest bindings edge-fer's API names were checked against (tests/fakes/tensorrt_api)
MAX_MAJOR = 11  # TensorRT 11: strongly typed only (edge_fer.build.tensorrt.Flavor)
SUPPORTED = "TensorRT 8.6, 10.x and 11.x"


def sidecar_path(engine: Path | str) -> Path:
    """``model.engine`` -> ``model.engine.json``: the engine file itself stays a plain TensorRT plan."""
    return Path(f"{engine}{SIDECAR_SUFFIX}")


def import_tensorrt(where: str):
    """The ``tensorrt`` module, or a one-line error saying what to do (``where`` names the caller's way out)."""
    try:
        import tensorrt as trt
    except ImportError:
        raise EdgeFerError(f"TensorRT is not installed here (on a Jetson it comes with JetPack, or pip install "
                           f"'edge-fer[jetson]'); {where}") from None
    check_version(trt.__version__)
    return trt


def check_version(version: str) -> tuple[int, int]:
    """(major, minor) of a supported TensorRT release, else one line saying which are supported.

    JetPack 4.6 (Jetson Nano, TX2: TensorRT 8.0/8.2, Python 3.6) and JetPack 5's TensorRT 8.5
    are not supported: edge-fer was checked against the 8.6, 10.3 and 11 bindings only.
    """
    parts = version.split(".")
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        raise EdgeFerError(f"TensorRT version {version!r}: give MAJOR.MINOR, e.g. 10.3 ({SUPPORTED} are supported)")
    release = (int(parts[0]), int(parts[1]))
    if release < MIN_VERSION or release[0] > MAX_MAJOR or release[0] == 9:  # 9.x never shipped for Jetson
        older = " (JetPack 4.6 / Nano / TX2 is not supported)" if release < (8, 5) else ""
        raise EdgeFerError(f"TensorRT {version}: edge-fer supports {SUPPORTED}{older}; build a bundle "
                           "(--bundle DIR) and run its trtexec line on older JetPack releases")
    return release


def read_sidecar(engine: Path) -> dict:
    path = sidecar_path(engine)
    if not path.is_file():
        raise EdgeFerError(f"{engine}: no sidecar {path.name} next to it (classes, preprocessing, build facts); "
                           "build engines with edge-fer build --target jetson, or keep the .json with the engine")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise EdgeFerError(f"{path}: not valid JSON ({e}); rebuild with edge-fer build --target jetson") from e
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        raise EdgeFerError(f"{path}: not an edge-fer engine sidecar (no metadata); rebuild with edge-fer build")
    return data


def check_compatible(engine: Path, built: dict, here: dict[str, str]) -> None:
    """Refuse an engine built with another TensorRT, L4T release or GPU (facts the sidecar lacks are skipped).

    The GPU name reads "Orin" on Orin Nano, NX and AGX alike, and all share compute capability
    8.7, so the L4T release (same TensorRT, other CUDA/driver) is compared too.
    """
    labels = {"tensorrt_version": "TensorRT", "l4t_release": "L4T", "gpu": "GPU",
              "compute_capability": "compute capability"}
    diffs = [f"{label} {built[key]} (here: {here[key]})" for key, label in labels.items()
             if built.get(key) and here.get(key) and str(built[key]) != str(here[key])]
    if diffs:
        raise EdgeFerError(f"{engine}: built for {', '.join(diffs)}; a TensorRT engine only runs on the GPU, "
                           "L4T and TensorRT release that built it: rebuild it on this machine with edge-fer build "
                           "--target jetson (or the bundle's build.sh)")


@dataclass
class TensorRTRunner:
    """Runs a TensorRT engine on GPU 0; batches above the profile maximum are split, below a fixed minimum padded."""

    engine: object
    context: object
    cuda: CudaMemory
    stream: object
    input_name: str
    output_name: str
    host: dict[str, np.ndarray]
    device: dict[str, int]
    min_batch: int
    max_batch: int
    info: ModelInfo
    precision: str
    backend: str = "tensorrt"
    settings: dict = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path | str) -> TensorRTRunner:
        path = Path(path)
        built = read_sidecar(path)
        if built.get("variant") == "deepstream":
            raise EdgeFerError(f"{path}: this is the DeepStream variant (grey 1-channel input, softmax output) for "
                               "nvinfer; run the main engine next to it instead")
        trt = import_tensorrt("run the engine on the Jetson that built it")
        cuda = open_cuda()
        from edge_fer.platform import l4t_release

        here = {"tensorrt_version": trt.__version__, "l4t_release": l4t_release(), **cuda.facts()}
        check_compatible(path, built, here)
        data = path.read_bytes()
        if built.get("engine_sha256") and hashlib.sha256(data).hexdigest() != built["engine_sha256"]:
            raise EdgeFerError(f"{path}: the engine does not match its sidecar (sha256 differs); it was replaced "
                               "after the build: rebuild with edge-fer build --target jetson")
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        dla = built.get("dla") or {}
        if dla:
            runtime.DLA_core = int(dla["core"])
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise EdgeFerError(f"{path}: TensorRT {trt.__version__} cannot deserialize it (see its log above); "
                               "rebuild it on this machine with edge-fer build --target jetson")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise EdgeFerError(f"{path}: expected one input and a logits output, found inputs {inputs}, "
                               f"outputs {outputs}")
        input_name = inputs[0]
        output_name = "logits" if "logits" in outputs else outputs[0]
        shape = tuple(engine.get_tensor_shape(input_name))
        if shape[0] == -1:
            low, _, high = (tuple(s) for s in engine.get_tensor_profile_shape(input_name, 0))
            min_batch, max_batch = low[0], high[0]
        else:
            min_batch = max_batch = shape[0]
        context = engine.create_execution_context()
        host: dict[str, np.ndarray] = {}
        device: dict[str, int] = {}
        for name in names:
            dims = tuple(engine.get_tensor_shape(name))
            host[name] = cuda.host_empty((max_batch, *dims[1:]), trt.nptype(engine.get_tensor_dtype(name)))
            device[name] = cuda.alloc(host[name].nbytes)
            if not context.set_tensor_address(name, device[name]):
                raise EdgeFerError(f"{path}: TensorRT rejected the buffer address of tensor {name!r}")
        info = ModelInfo.from_strings(built["metadata"], str(sidecar_path(path)))
        info.check_shapes(shape, tuple(engine.get_tensor_shape(output_name)), str(path))
        settings = {"tensorrt_version": trt.__version__, **here, "cuda_binding": cuda.name, "dla": dla or None,
                    "batch_range": [min_batch, max_batch], "layer_precisions": built.get("layers", {}).get("summary")}
        return cls(engine, context, cuda, cuda.stream(), input_name, output_name, host, device, min_batch,
                   max_batch, info, str(built.get("precision", "")), settings=settings)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        want = self.host[self.input_name].shape[1:]
        if tuple(batch.shape[1:]) != want:
            dims = ", ".join(map(str, want))
            raise EdgeFerError(f"input batch shape {tuple(batch.shape)}: this engine takes (N, {dims})")
        return np.concatenate([self._run(batch[i:i + self.max_batch]) for i in range(0, len(batch), self.max_batch)])

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        cuda, n = self.cuda, len(chunk)
        rows = max(n, self.min_batch)  # fixed-batch (DLA) engines: pad with zeros, drop the padding after
        host_in, host_out = self.host[self.input_name], self.host[self.output_name]
        host_in[:n] = chunk
        host_in[n:rows] = 0
        if not self.context.set_input_shape(self.input_name, (rows, *host_in.shape[1:])):
            raise EdgeFerError(f"batch {rows} is outside the engine's profile ({self.min_batch}..{self.max_batch})")
        cuda.copy_in_async(self.device[self.input_name], host_in[:rows], self.stream)
        if not self.context.execute_async_v3(cuda.handle(self.stream)):
            raise EdgeFerError("TensorRT execution failed (see its log above)")
        cuda.copy_out_async(host_out[:rows], self.device[self.output_name], self.stream)
        cuda.sync(self.stream)
        return host_out[:n].astype(np.float32, copy=True)
