"""TensorRT engines for Jetson, built with the TensorRT Python API (``edge-fer build --target jetson``).

Which build a TensorRT release gets is decided by its version (:class:`Flavor`):

* **weakly typed** (8.6 up to 10.11): precision is a builder flag.  FP16 builds the float
  ONNX with the FP16 flag; INT8 builds the QDQ ONNX of ``edge-fer quantize --target jetson``
  with the INT8 flag (explicit quantization: the graph carries every scale).
* **strongly typed** (10.12 on, the only mode of TensorRT 11, which removed the FP16/INT8
  flags and the calibrator): precision comes from the graph, so FP16 builds a float16 copy
  of the ONNX (:mod:`edge_fer.build.float16`, float32 I/O) and INT8 the same QDQ ONNX, no flags.
* **implicit INT8** (``--implicit-int8``, and DLA INT8, TensorRT 8.x only): the float ONNX
  calibrated in TensorRT by IInt8EntropyCalibrator2 with a calibration cache.  DLA runs no
  explicit (Q/DQ) quantization, and TensorRT 10 deprecated the calibrator (11 removed it), so
  from 10 on DLA INT8 is refused with the two builds that do work (DLA fp16, GPU int8).

Float layers of an INT8 engine stay FP32 on the GPU (the same as the QDQ ONNX that was
checked against the float model); on DLA, which has no FP32, they run in FP16.  With GPU
fallback, the layers DLA cannot run are listed in the sidecar (``config.can_run_on_DLA``
asked before the build): an engine is never recorded as DLA-only when layers fell back.

The engine is a plain TensorRT plan; :func:`build_engine` returns it with its sidecar
(ModelInfo strings, TensorRT version, GPU, L4T release, precision, DLA placement, batch
profile, layer precisions from the engine inspector read through an execution context at the
opt shape, source ONNX sha256), which the runner checks before it deserialises anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_fer.artifacts.atomic import atomic_path
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.backends.cuda_memory import open_cuda
from edge_fer.backends.tensorrt_backend import check_version, import_tensorrt
from edge_fer.export.onnx_io import is_quantized
from edge_fer.platform import jetpack_release, l4t_release

JETSON_PRECISIONS = ("fp16", "int8")
BUNDLE_TENSORRT = "10.3"  # a bundle's TensorRT when none is declared: JetPack 6.1/6.2, the current Orin release
STRONGLY_TYPED_FROM = (10, 12)  # weak typing deprecated in 10.12, removed in 11


@dataclass(frozen=True)
class Flavor:
    """What one TensorRT release offers a build, decided by its version (documented API changes, no probing)."""

    version: tuple[int, int]

    @classmethod
    def of(cls, version: str) -> Flavor:
        return cls(check_version(version))

    @property
    def label(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def strongly_typed(self) -> bool:
        return self.version >= STRONGLY_TYPED_FROM

    @property
    def explicit_batch_flag(self) -> bool:
        """TensorRT 8 needs the flag for ONNX; 10 is explicit-batch only (flag deprecated), 11 removed it."""
        return self.version[0] < 10

    @property
    def implicit_int8(self) -> bool:
        """The calibrator API: usable on 8.x, deprecated in 10.1 (edge-fer refuses it there), removed in 11."""
        return self.version[0] < 10
DEFAULT_MAX_BATCH = 8
SIDECAR_FORMAT = "edge-fer-tensorrt-sidecar/1"


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
    workspace_mb: int | None = field(default=None, metadata={"flag": "--workspace"})  # MiB
    timing_cache: str | None = None
    opt_batch: int = 1
    max_batch: int | None = None
    implicit_int8: bool = False
    calib_cache: str | None = None
    tensorrt: str | None = None  # declared TensorRT release (bundles); a build here uses the installed one

    def __post_init__(self) -> None:
        check_jetson_precision(self.precision)
        if self.tensorrt is not None:
            Flavor.of(self.tensorrt)  # a one-line error for an unsupported or unreadable version
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


def layer_precisions(inspector_json: str) -> dict:
    """Per-layer output format and a count per data type, from the engine inspector's JSON.

    TensorRT up to 10 writes ``"Format/Datatype": "... FP16 format ..."``; 11 splits it into
    ``"Format"`` and ``"Datatype"``.  "N/A" (a dynamic-shape engine inspected without a context
    at a concrete shape) counts as unknown, so it can never pass for INT8.
    """
    try:
        layers = json.loads(inspector_json).get("Layers", [])
    except (ValueError, AttributeError):
        return {"summary": {}, "layers": [], "note": "engine inspector output not readable"}
    out = []
    for layer in layers:
        if isinstance(layer, str):  # built without detailed profiling: names only
            out.append({"name": layer, "type": "", "format": ""})
            continue
        first = (layer.get("Outputs") or [{}])[0]
        fmt = first.get("Format/Datatype") or " ".join(str(first[k]) for k in ("Format", "Datatype") if k in first)
        out.append({"name": layer.get("Name", ""), "type": layer.get("LayerType", ""), "format": fmt})
    kinds = Counter((re.search(r"\b(Int8|FP8|FP16|BF16|FP32|Int32|Int64|Bool)\b", lay["format"], re.IGNORECASE)
                     or [None, "?"])[1].replace("INT", "Int").replace("BOOL", "Bool") for lay in out)
    return {"summary": dict(sorted(kinds.items())), "layers": out}


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


def _parse(trt, builder, logger, onnx_path: Path, flavor: Flavor):
    """The parsed network and its parser (which owns the weights: keep it alive until the build is done)."""
    flags = 0
    if flavor.explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if flavor.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgeFerError(f"{onnx_path}: TensorRT {trt.__version__} cannot parse it ({errors[:300]})")
    return network, parser


def check_dla_int8(settings: EngineSettings, flavor: Flavor, has_qdq: bool, where: str) -> None:
    """DLA runs INT8 only implicitly quantized (calibrated): refuse what cannot work, with what does."""
    if settings.dla_core is None or settings.precision != "int8":
        return
    if not flavor.implicit_int8:
        raise EdgeFerError(f"--precision int8 --dla-core {settings.dla_core}: DLA runs INT8 only with implicit "
                           f"(calibrated) quantization, which TensorRT {flavor.label} no longer offers (Q/DQ layers "
                           "fall back to the GPU); build a DLA fp16 engine (--precision fp16) or an int8 engine on "
                           "the GPU (drop --dla-core)")
    if has_qdq:
        raise EdgeFerError(f"{where}: a QDQ (explicit INT8) model, which DLA cannot run; DLA INT8 on TensorRT "
                           f"{flavor.label} calibrates the float ONNX of edge-fer export (--implicit-int8)")


@dataclass(frozen=True)
class _Build:
    """One engine build in progress: the TensorRT module, builder, parsed network and config its steps set up."""

    trt: Any
    builder: Any
    network: Any
    config: Any


def _place_on_dla(build: _Build, settings: EngineSettings, onnx_path: Path) -> dict:
    """Put the network on DLA; returns its placement (layers DLA cannot run go to the GPU only with fallback)."""
    trt, builder, network, config = build.trt, build.builder, build.network, build.config
    if settings.dla_core >= builder.num_DLA_cores:
        raise EdgeFerError(f"--dla-core {settings.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = settings.dla_core
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    on_gpu = [layer.name for layer in layers if not config.can_run_on_DLA(layer)]
    if on_gpu and not settings.gpu_fallback:
        names = ", ".join(on_gpu[:3]) + (", ..." if len(on_gpu) > 3 else "")
        raise EdgeFerError(f"{onnx_path}: {len(on_gpu)} of {len(layers)} layers cannot run on DLA ({names}); "
                           "add --gpu-fallback to run them on the GPU")
    if settings.gpu_fallback:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    return {"core": settings.dla_core, "gpu_fallback": settings.gpu_fallback,
            "layers_on_dla": len(layers) - len(on_gpu), "layers_on_gpu": on_gpu}


def _configure(build: _Build, settings: EngineSettings, flavor: Flavor, has_qdq: bool,
               calib_batches: Sequence[np.ndarray], onnx_path: Path) -> dict:
    """Precision, DLA, workspace and profile on the build's config; returns the sidecar's input/profile/DLA facts."""
    trt, builder, network, config = build.trt, build.builder, build.network, build.config
    if settings.workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions in the inspector
    if settings.precision == "fp16" and has_qdq:
        raise EdgeFerError(f"{onnx_path}: a QDQ (INT8) model; build --precision fp16 from the float ONNX")
    if settings.precision == "int8" and not has_qdq and not settings.implicit_int8:
        raise EdgeFerError(f"{onnx_path}: no Q/DQ nodes; INT8 engines build from the QDQ ONNX of edge-fer "
                           "quantize --target jetson (or --implicit-int8 on TensorRT 8.x)")
    if not flavor.strongly_typed:  # strongly typed: the graph's types are the precision, no flags
        config.set_flag(trt.BuilderFlag.FP16 if settings.precision == "fp16" else trt.BuilderFlag.INT8)
    dla = None
    if settings.dla_core is not None:
        check_dla_int8(settings, flavor, has_qdq, str(onnx_path))
        if not flavor.strongly_typed:
            config.set_flag(trt.BuilderFlag.FP16)  # DLA computes in FP16/INT8 only
        dla = _place_on_dla(build, settings, onnx_path)
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
    return {"input": {"name": tensor.name, "shape": shape}, "batch": {"min": low, "opt": opt, "max": high},
            "dla": dla}


def _attach_timing_cache(config, path: Path) -> None:
    """Read ``path`` into the build; a cache TensorRT refuses (another device or release) stops it before the build."""
    data = path.read_bytes() if path.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(data), ignore_mismatch=False):
        raise EdgeFerError(f"--timing-cache {path}: TensorRT refused it (written on another device or by another "
                           "TensorRT release); give a new path or delete it, the build then writes a fresh one")


def _layer_info(trt, engine, shapes: dict) -> dict:
    """Layer precisions, read through an execution context at the opt shape (without one, a dynamic-shape
    engine reports every format as "N/A due to dynamic shapes")."""
    inspector = engine.create_engine_inspector()
    context = engine.create_execution_context()
    name, dims = shapes["input"]["name"], shapes["input"]["shape"]
    if dims[0] == -1 and not context.set_input_shape(name, (shapes["batch"]["opt"], *dims[1:])):
        raise EdgeFerError(f"TensorRT refused the opt shape of {name} on the engine it just built")
    inspector.execution_context = context
    return layer_precisions(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def build_engine(onnx_path: Path | str, settings: EngineSettings, info: ModelInfo,
                 calib_batches: Sequence[np.ndarray] = (), extra: dict | None = None,
                 log: Callable[[str], None] = lambda _msg: None) -> tuple[bytes, dict]:
    """Build ``onnx_path`` into a serialized engine; returns ``(engine bytes, sidecar)`` without writing either.

    For a strongly typed release ``onnx_path`` must already be the fp16 ONNX for fp16
    (:func:`edge_fer.build.run.build_jetson` converts it).
    """
    import onnx

    trt = import_tensorrt("build on the Jetson, or pass --bundle DIR to write a folder that builds there")
    flavor = installed_flavor(trt, settings)
    onnx_path = Path(onnx_path)
    has_qdq = is_quantized(onnx.load(str(onnx_path), load_external_data=False))
    if settings.implicit_int8 and not flavor.implicit_int8:
        raise EdgeFerError(f"--implicit-int8: the calibrator API is deprecated in TensorRT {trt.__version__} (removed "
                           "in 11); build INT8 from the QDQ ONNX instead (drop --implicit-int8)")
    if settings.implicit_int8 and not settings.calib_cache:
        raise EdgeFerError("--implicit-int8 needs a calibration cache path (--calib-cache FILE)")
    try:  # pycuda also makes a CUDA context current before TensorRT starts; without a binding GPU facts stay unknown
        gpu = open_cuda().facts()
    except EdgeFerError:
        gpu = {"gpu": "", "compute_capability": ""}
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, onnx_path, flavor)  # _parser owns the weights until the build
    config = builder.create_builder_config()
    shapes = _configure(_Build(trt, builder, network, config), settings, flavor, has_qdq, calib_batches, onnx_path)
    cache_path = Path(settings.timing_cache) if settings.timing_cache else None
    if cache_path is not None:
        _attach_timing_cache(config, cache_path)
    dla = shapes["dla"]
    if dla and dla["layers_on_gpu"]:
        log(f"warning: {len(dla['layers_on_gpu'])} layers cannot run on DLA and fall back to the GPU")
    log(f"building TensorRT {trt.__version__} {settings.precision} engine "
        f"({'strongly typed' if flavor.strongly_typed else 'weakly typed'})")
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
    int8_mode = None
    if settings.precision == "int8":
        int8_mode = "implicit (IInt8EntropyCalibrator2)" if settings.implicit_int8 else "explicit (QDQ ONNX)"
    l4t = l4t_release()
    sidecar = {
        **sidecar_fields(settings, flavor, info, onnx_path.name, onnx_path.read_bytes()),
        "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(), "tensorrt_version": trt.__version__, **gpu,
        "l4t_release": l4t, "jetpack": jetpack_release(l4t), "int8_mode": int8_mode, **shapes,
        "layers": _layer_info(trt, engine, shapes), **(extra or {}),
    }
    return engine_bytes, sidecar


def sidecar_fields(settings: EngineSettings, flavor: Flavor, info: ModelInfo, source_onnx: str,
                   onnx_bytes: bytes) -> dict:
    """The sidecar entries an engine built here and a bundle's ``metadata.json`` share (the runner checks them)."""
    return {"format": SIDECAR_FORMAT, "precision": settings.precision,
            "typing": "strong" if flavor.strongly_typed else "weak", "settings": settings.to_dict(),
            "source_onnx": source_onnx, "source_onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
            "metadata": {**info.to_strings(), "edge_fer.precision": settings.precision}}


def installed_flavor(trt, settings: EngineSettings) -> Flavor:
    """The flavor of the TensorRT here; a declared ``--tensorrt`` that names another release is an error."""
    flavor = Flavor.of(trt.__version__)
    if settings.tensorrt and Flavor.of(settings.tensorrt).version != flavor.version:
        raise EdgeFerError(f"--tensorrt {settings.tensorrt}, but TensorRT {trt.__version__} is installed here; "
                           "drop --tensorrt (a build here uses the installed release) or build where it is installed")
    return flavor


def target_flavor(settings: EngineSettings, bundle: bool) -> Flavor:
    """The release a build is for: the installed one here, the declared one (or BUNDLE_TENSORRT) for a bundle."""
    if bundle:
        return Flavor.of(settings.tensorrt or BUNDLE_TENSORRT)
    return installed_flavor(import_tensorrt("build on the Jetson, or pass --bundle DIR to write a folder that "
                                            "builds there"), settings)
