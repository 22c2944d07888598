"""TensorRT engines for Jetson, built with the TensorRT Python API (``edge-fer build --target jetson``).

INT8 is explicit quantization: the QDQ ONNX from ``edge-fer quantize --target jetson``
carries every scale, so the builder only needs the INT8 flag (the implicit calibrator
API is deprecated in TensorRT 10 and removed in 11).  On TensorRT 8.x
``implicit_int8`` instead calibrates the float ONNX with IInt8EntropyCalibrator2 and a
calibration cache, fed by the same calibration images.  FP16 builds from the float ONNX.
Float layers of an INT8 engine stay FP32 on the GPU (the same as the QDQ ONNX that
was checked against the float model); on DLA, which has no FP32, they run in FP16.

The engine is a plain TensorRT plan; :func:`build_engine` returns it with its sidecar
(ModelInfo strings, TensorRT version, GPU, L4T release, precision, DLA, batch profile,
layer precisions from the engine inspector, source ONNX sha256), which the runner
checks before it deserialises anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_fer.artifact import ModelInfo
from edge_fer.atomic import atomic_path
from edge_fer.backends.cuda_memory import open_cuda
from edge_fer.backends.tensorrt_backend import import_tensorrt
from edge_fer.errors import EdgeFerError

JETSON_PRECISIONS = ("fp16", "int8")
DEFAULT_MAX_BATCH = 8
SIDECAR_FORMAT = "edge-fer-tensorrt-sidecar/1"
L4T_RELEASE = Path("/etc/nv_tegra_release")


def check_jetson_precision(precision: str) -> None:
    if precision not in JETSON_PRECISIONS:
        raise EdgeFerError(f"--precision {precision} is not available for --target jetson: valid precisions there "
                           f"are {', '.join(JETSON_PRECISIONS)} (TensorRT on Jetson is built for fp16 or int8)")


@dataclass
class EngineSettings:
    """How to build one engine; validated on creation so a bad combination fails before any work."""

    precision: str = "fp16"
    dla_core: int | None = None
    gpu_fallback: bool = False
    workspace_mb: int | None = None
    timing_cache: str | None = None
    opt_batch: int = 1
    max_batch: int | None = None
    implicit_int8: bool = False
    calib_cache: str | None = None

    def __post_init__(self) -> None:
        check_jetson_precision(self.precision)
        if self.gpu_fallback and self.dla_core is None:
            raise EdgeFerError("--gpu-fallback only applies with --dla-core N (layers DLA cannot run go to the GPU)")
        if self.dla_core is not None and self.dla_core < 0:
            raise EdgeFerError(f"--dla-core {self.dla_core}: DLA cores are numbered from 0")
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise EdgeFerError(f"--workspace {self.workspace_mb}: give the workspace limit in MB (>= 1)")
        if self.implicit_int8 and self.precision != "int8":
            raise EdgeFerError("--implicit-int8 calibrates an INT8 engine: use it with --precision int8")
        if self.opt_batch < 1:
            raise EdgeFerError(f"--opt-batch {self.opt_batch}: must be >= 1")
        if self.max_batch is None:
            # DLA runs one fixed batch (no dynamic shapes there); the GPU gets a 1..max profile
            self.max_batch = self.opt_batch if self.dla_core is not None else max(DEFAULT_MAX_BATCH, self.opt_batch)
        if self.max_batch < self.opt_batch:
            raise EdgeFerError(f"--max-batch {self.max_batch} is below --opt-batch {self.opt_batch}")
        if self.dla_core is not None and self.max_batch != self.opt_batch:
            raise EdgeFerError(f"--dla-core: DLA engines take one fixed batch; give --opt-batch and --max-batch the "
                               f"same value (got {self.opt_batch} and {self.max_batch})")

    @property
    def profile(self) -> tuple[int, int, int]:
        """(min, opt, max) batch of the optimisation profile; DLA gets min = opt = max."""
        low = self.opt_batch if self.dla_core is not None else 1
        return low, self.opt_batch, int(self.max_batch or self.opt_batch)

    def to_dict(self) -> dict:
        return asdict(self)


def l4t_release(path: Path = L4T_RELEASE) -> str:
    """``R35.4.1`` from ``/etc/nv_tegra_release`` (``# R35 (release), REVISION: 4.1, ...``); '' off a Jetson."""
    try:
        first = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return ""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", first)
    return f"R{m[1]}.{m[2]}" if m else first.lstrip("# ").strip()


# L4T release -> JetPack, from NVIDIA's JetPack archive; an unlisted release is reported as unknown, not guessed.
JETPACK = {
    "R32.5.0": "4.5", "R32.5.1": "4.5.1", "R32.6.1": "4.6", "R32.7.1": "4.6.1", "R32.7.2": "4.6.2",
    "R32.7.3": "4.6.3", "R32.7.4": "4.6.4", "R32.7.5": "4.6.5", "R32.7.6": "4.6.6",
    "R35.1.0": "5.0.2", "R35.2.1": "5.1", "R35.3.1": "5.1.1", "R35.4.1": "5.1.2", "R35.5.0": "5.1.3",
    "R35.6.0": "5.1.4", "R35.6.1": "5.1.5",
    "R36.2.0": "6.0 DP", "R36.3.0": "6.0", "R36.4.0": "6.1", "R36.4.3": "6.2", "R36.4.4": "6.2.1",
}


def jetpack_release(l4t: str) -> str:
    """JetPack version of an L4T release (``R35.4.1`` -> ``5.1.2``); '' off a Jetson, ``unknown`` if unlisted."""
    if not l4t:
        return ""
    return JETPACK.get(l4t, f"unknown (L4T {l4t})")


def layer_precisions(inspector_json: str) -> dict:
    """Per-layer output format and a count per data type, from the engine inspector's JSON."""
    try:
        layers = json.loads(inspector_json).get("Layers", [])
    except (ValueError, AttributeError):
        return {"summary": {}, "layers": [], "note": "engine inspector output not readable"}
    out = []
    for layer in layers:
        if isinstance(layer, str):  # built without detailed profiling: names only
            out.append({"name": layer, "type": "", "format": ""})
            continue
        outputs = layer.get("Outputs") or [{}]
        out.append({"name": layer.get("Name", ""), "type": layer.get("LayerType", ""),
                    "format": outputs[0].get("Format/Datatype", "")})
    kinds = Counter((re.search(r"\b(Int8|FP8|FP16|BF16|FP32|Int32|Int64|Bool)\b", lay["format"]) or [None, "?"])[1]
                    for lay in out)
    return {"summary": dict(sorted(kinds.items())), "layers": out}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entropy_calibrator(trt, batches: Sequence[np.ndarray], cache: Path):
    """IInt8EntropyCalibrator2 over ``batches`` (equal sizes), reading/writing ``cache`` (TensorRT 8.x fallback)."""
    cuda = open_cuda()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.pending = iter(batches)
            self.buffer = cuda.alloc(batches[0].nbytes)

        def get_batch_size(self) -> int:
            return len(batches[0])

        def get_batch(self, names):
            batch = next(self.pending, None)
            if batch is None:
                return None
            cuda.copy_in(self.buffer, np.ascontiguousarray(batch, dtype=np.float32))
            return [self.buffer]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            with atomic_path(cache) as tmp:
                tmp.write_bytes(bytes(data))

    return EntropyCalibrator()


def _parse(trt, builder, logger, onnx_path: Path):
    """The parsed network and its parser (which owns the weights: keep it alive until the build is done)."""
    major = int(trt.__version__.split(".")[0])
    # TensorRT 8 needs the explicit-batch flag for ONNX; TensorRT 10 is explicit-batch only (flag deprecated)
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgeFerError(f"{onnx_path}: TensorRT {trt.__version__} cannot parse it ({errors[:300]})")
    return network, parser


def _configure(trt, builder, network, config, settings: EngineSettings, has_qdq: bool,
               calib_batches: Sequence[np.ndarray], onnx_path: Path) -> dict:
    """Precision, DLA, workspace and profile on ``config``; returns the sidecar's input/profile facts."""
    if settings.workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions in the inspector
    if settings.precision == "fp16":
        if has_qdq:
            raise EdgeFerError(f"{onnx_path}: a QDQ (INT8) model; build --precision fp16 from the float ONNX")
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        if not has_qdq and not settings.implicit_int8:
            raise EdgeFerError(f"{onnx_path}: no Q/DQ nodes; INT8 engines build from the QDQ ONNX of edge-fer "
                               "quantize --target jetson (or --implicit-int8 on TensorRT 8.x)")
        config.set_flag(trt.BuilderFlag.INT8)
    if settings.dla_core is not None:
        if settings.dla_core >= builder.num_DLA_cores:
            raise EdgeFerError(f"--dla-core {settings.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        config.set_flag(trt.BuilderFlag.FP16)  # DLA computes in FP16/INT8 only
        if settings.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    tensor = network.get_input(0)
    shape = [int(d) for d in tensor.shape]
    low, opt, high = settings.profile
    if shape[0] == -1:
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, (low, *shape[1:]), (opt, *shape[1:]), (high, *shape[1:]))
        config.add_optimization_profile(profile)
    elif (low, high) != (shape[0], shape[0]):
        raise EdgeFerError(f"{onnx_path}: static batch {shape[0]} but the engine should take {low}..{high}; "
                           "export with a dynamic batch (edge-fer export --dynamic-batch) or set "
                           f"--opt-batch/--max-batch to {shape[0]}")
    if settings.implicit_int8:
        if not calib_batches:
            raise EdgeFerError("--implicit-int8: no full calibration batch; give more --calib images")
        config.int8_calibrator = _entropy_calibrator(trt, calib_batches, Path(str(settings.calib_cache)))
        if shape[0] == -1:  # calibration runs one fixed shape: the calibration batch
            size = len(calib_batches[0])
            calib_profile = builder.create_optimization_profile()
            calib_profile.set_shape(tensor.name, *[(size, *shape[1:])] * 3)
            config.set_calibration_profile(calib_profile)
    return {"input": {"name": tensor.name, "shape": shape}, "batch": {"min": low, "opt": opt, "max": high}}


def build_engine(onnx_path: Path | str, settings: EngineSettings, info: ModelInfo,
                 calib_batches: Sequence[np.ndarray] = (), extra: dict | None = None,
                 log: Callable[[str], None] = lambda _msg: None) -> tuple[bytes, dict]:
    """Build ``onnx_path`` into a serialized engine; returns ``(engine bytes, sidecar)`` without writing either."""
    import onnx

    trt = import_tensorrt("build on the Jetson, or pass --bundle DIR to write a folder that builds there")
    onnx_path = Path(onnx_path)
    has_qdq = any(n.op_type == "QuantizeLinear" for n in onnx.load(str(onnx_path), load_external_data=False).graph.node)
    if settings.implicit_int8 and int(trt.__version__.split(".")[0]) >= 10:
        raise EdgeFerError(f"--implicit-int8: the calibrator API is deprecated in TensorRT {trt.__version__}; "
                           "build INT8 from the QDQ ONNX instead (drop --implicit-int8)")
    if settings.implicit_int8 and not settings.calib_cache:
        raise EdgeFerError("--implicit-int8 needs a calibration cache path (--calib-cache FILE)")
    try:  # pycuda also makes a CUDA context current before TensorRT starts; without a binding GPU facts stay unknown
        gpu = open_cuda().facts()
    except EdgeFerError:
        gpu = {"gpu": "", "compute_capability": ""}
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, onnx_path)  # _parser owns the weights until the build
    config = builder.create_builder_config()
    shapes = _configure(trt, builder, network, config, settings, has_qdq, calib_batches, onnx_path)
    cache_path = Path(settings.timing_cache) if settings.timing_cache else None
    if cache_path is not None:
        data = cache_path.read_bytes() if cache_path.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(data), ignore_mismatch=False)
    log(f"building TensorRT {trt.__version__} {settings.precision} engine")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgeFerError(f"{onnx_path}: TensorRT could not build the engine (see the TensorRT log above)")
    engine_bytes = bytes(serialized)
    if cache_path is not None:
        with atomic_path(cache_path) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    runtime = trt.Runtime(logger)
    if settings.dla_core is not None:
        runtime.DLA_core = settings.dla_core
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise EdgeFerError(f"{onnx_path}: TensorRT built an engine it cannot load back (see its log above)")
    layers = layer_precisions(engine.create_engine_inspector().get_engine_information(
        trt.LayerInformationFormat.JSON))
    int8_mode = None
    if settings.precision == "int8":
        int8_mode = "implicit (IInt8EntropyCalibrator2)" if settings.implicit_int8 else "explicit (QDQ ONNX)"
    sidecar = {
        "format": SIDECAR_FORMAT,
        "engine_sha256": sha256_bytes(engine_bytes),
        "tensorrt_version": trt.__version__,
        **gpu,
        "l4t_release": l4t_release(),
        "jetpack": jetpack_release(l4t_release()),
        "precision": settings.precision,
        "int8_mode": int8_mode,
        "dla": {"core": settings.dla_core, "gpu_fallback": settings.gpu_fallback}
        if settings.dla_core is not None else None,
        **shapes,
        "settings": settings.to_dict(),
        "source_onnx": onnx_path.name,
        "source_onnx_sha256": sha256_bytes(onnx_path.read_bytes()),
        "layers": layers,
        "metadata": {**info.to_strings(), "edge_fer.precision": settings.precision},
        **(extra or {}),
    }
    return engine_bytes, sidecar


def write_engine(out: Path | str, engine_bytes: bytes, sidecar: dict) -> None:
    """Write the sidecar, then the engine, each atomically (an engine never appears without its sidecar)."""
    from edge_fer.atomic import write_json
    from edge_fer.backends.tensorrt_backend import sidecar_path

    out = Path(out)
    write_json(sidecar_path(out), sidecar)
    with atomic_path(out) as tmp:
        tmp.write_bytes(engine_bytes)
