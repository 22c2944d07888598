"""A strict, per-version fake of the TensorRT and pycuda API edge-fer calls, for machines without a GPU.

Strict: ``install(monkeypatch, version=...)`` exposes exactly one TensorRT release's Python
surface, read from ``tensorrt_api/tensorrt-VERSION.json`` (recorded from NVIDIA's real bindings
wheels by ``scripts/tensorrt_api.py``).  Enum members are generated from those lists with their
real values; every fake class answers only the attributes its real counterpart has in that
release, so ``trt.BuilderFlag.FP16`` or ``config.int8_calibrator`` on TensorRT 11 raise
AttributeError exactly as the bindings do.  A name that exists in the release but that this fake
does not emulate raises NotImplementedError, never a silent stand-in.

It fails where TensorRT fails: None from ``build_serialized_network`` /
``deserialize_cuda_engine`` (wrong version or compute capability), False from
``set_input_shape`` outside the profile and from ``set_timing_cache`` given a cache from another
device or release, parser errors, an ONNX network without the explicit-batch flag on 8.x,
precision flags on a strongly typed network, Q/DQ layers without the INT8 flag (weak typing),
Q/DQ layers on DLA (DLA has no explicit quantization: those layers fall back to the GPU with
GPU_FALLBACK, the build fails without it), and an engine inspector without an execution context
on dynamic shapes ("N/A due to dynamic shapes" for every format).

It computes: the "plan" embeds the ONNX it was built from and runs it in ONNX Runtime on
bytes that travel through fake device memory.  Copies and execution queued on a stream only
run at ``synchronize()``.  Weakly typed FP16 builds round inputs and outputs through float16;
strongly typed builds run the graph's own types (a fp16 ONNX runs in fp16).  INT8 builds need
Q/DQ nodes or a calibrator (really driven: batches are read from device memory, the cache is
read and written).  What is *not* emulated: kernel selection, real INT8 arithmetic of
implicitly calibrated engines (they run the float graph) and DLA numerics.  Which layers DLA
accepts follows NVIDIA's DLA layer list roughly (:data:`DLA_OPS`), not a real DLA compiler.
Every build is recorded in ``FakeState.builds`` for assertions.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import importlib.abc
import importlib.util
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

MAGIC = b"FAKE-TENSORRT-PLAN\n"
API_DIR = Path(__file__).resolve().parent / "tensorrt_api"
SUPPORTED = ("8.6.1", "10.3.0", "11.4.0.106")  # one recorded surface each (tensorrt_api/)
PRECISION_FLAGS = ("FP16", "INT8", "BF16", "FP8", "INT4")
# ONNX ops the fake lets run on DLA (after NVIDIA's "DLA supported layers"); all others need the GPU
DLA_OPS = {"Conv", "Relu", "Sigmoid", "Clip", "Add", "Mul", "Concat", "MaxPool", "AveragePool", "GlobalAveragePool",
           "BatchNormalization", "Softmax", "Transpose"}
LAYER_TYPES = {"Conv": "CONVOLUTION", "Relu": "ACTIVATION", "Sigmoid": "ACTIVATION", "Clip": "ACTIVATION",
               "Add": "ELEMENTWISE", "Mul": "ELEMENTWISE", "Div": "ELEMENTWISE", "ReduceMean": "REDUCE",
               "ReduceMax": "REDUCE", "ReduceL2": "REDUCE", "Concat": "CONCATENATION", "MatMul": "MATRIX_MULTIPLY",
               "QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE", "Shape": "SHAPE", "Cast": "CAST",
               "Identity": "IDENTITY", "Transpose": "SHUFFLE", "Expand": "SLICE", "Softmax": "SOFTMAX",
               "Constant": "CONSTANT", "GlobalAveragePool": "REDUCE"}


@functools.cache
def api(version: str) -> dict:
    """The recorded API surface of one TensorRT release."""
    return json.loads((API_DIR / f"tensorrt-{version}.json").read_text())


@dataclass
class FakeState:
    version: str = "10.3.0"
    gpu: str = "Orin"
    compute_capability: tuple[int, int] = (8, 7)
    dla_cores: int = 2
    builds: list[dict] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    context: bool = False  # set by importing pycuda.autoinit
    memory: dict[int, np.ndarray] = field(default_factory=dict)
    next_address: int = 0x7F0000000000
    streams: dict[int, list] = field(default_factory=dict)
    enums: dict[str, type[enum.IntEnum]] = field(default_factory=dict)
    accessed: set[tuple[str, str]] = field(default_factory=set)  # (class, attribute) edge-fer touched

    recorded: str = "10.3.0"  # the recorded surface this (possibly later patch) version exposes

    @property
    def api(self) -> dict:
        return api(self.recorded)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def alloc(self, nbytes: int) -> int:
        """Fresh zeroed device bytes at a 256-aligned address (as cudaMalloc aligns), with a guard gap after."""
        address = self.next_address
        self.memory[address] = np.zeros(int(nbytes), np.uint8)
        self.next_address += (int(nbytes) + 255) // 256 * 256 + 256
        return address

    def allocation(self, address: int, nbytes: int) -> np.ndarray:
        """The device bytes [address, address + nbytes); errors like CUDA on an invalid range."""
        for start, buf in self.memory.items():
            if start <= address and address + nbytes <= start + buf.size:
                return buf[address - start:address - start + nbytes]
        raise RuntimeError(f"cudaErrorIllegalAddress: {nbytes} bytes at {address:#x} outside any allocation")


# ----------------------------------------------------------------------------- strictness


def _member_kind(trt_class: str, name: str, what: str) -> str:
    """The recorded kind of ``trt_class.name`` in this release; AttributeError (as pybind11 words it) if absent."""
    members = STATE.api["classes"].get(trt_class, {})
    STATE.accessed.add((trt_class, name))
    if name not in members:
        raise AttributeError(f"{what} has no attribute '{name}' (TensorRT {STATE.version})")
    return members[name]


class _StrictMeta(type):
    def __getattribute__(cls, name):
        trt = type.__getattribute__(cls, "__dict__").get("_trt")
        if trt and not name.startswith("_"):
            _member_kind(trt, name, f"type object 'tensorrt.tensorrt.{trt}'")
        return type.__getattribute__(cls, name)


class _Strict(metaclass=_StrictMeta):
    """Base of every fake TensorRT class: only the real release's attributes are reachable.

    Python subclasses (edge-fer's calibrator) may add their own attributes, as with pybind11 classes.
    """

    _trt = ""

    def _strict(self, name: str) -> str | None:
        trt = type(self).__dict__.get("_trt")
        if not trt or name.startswith("_"):
            return None
        return _member_kind(trt, name, f"'tensorrt.tensorrt.{trt}' object")

    def __getattribute__(self, name):
        object.__getattribute__(self, "_strict")(name)
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value) -> None:
        kind = self._strict(name)
        if kind is not None and kind != "property":
            raise AttributeError(f"can't set attribute '{name}' of tensorrt.tensorrt.{type(self)._trt} ({kind})")
        object.__setattr__(self, name, value)


def _enum(name: str):
    return STATE.enums[name]


# ----------------------------------------------------------------------------- tensorrt


class Logger(_Strict):
    _trt = "Logger"

    def __init__(self, min_severity=None) -> None:
        self._min_severity = min_severity


def nptype(dtype):
    return {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
            "BOOL": np.bool_, "UINT8": np.uint8}[dtype.name]


class ITensor(_Strict):
    _trt = "ITensor"

    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self._name, self._shape = name, shape

    @property
    def name(self) -> str:
        return self._name

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape


class ILayer(_Strict):
    _trt = "ILayer"

    def __init__(self, name: str, op: str) -> None:
        self._name, self._op = name, op

    @property
    def name(self) -> str:
        return self._name

    @property
    def type(self):
        return getattr(_enum("LayerType"), LAYER_TYPES.get(self._op, "PLUGIN_V2"))


class INetworkDefinition(_Strict):
    _trt = "INetworkDefinition"

    def __init__(self, explicit_batch: bool, strongly_typed: bool) -> None:
        self._explicit_batch = explicit_batch
        self._strongly_typed = strongly_typed
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._onnx = b""
        self._nodes: list[tuple[str, str]] = []
        self._fp16 = False  # the ONNX computes in float16 (strongly typed fp16 comes from the graph)

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    @property
    def num_layers(self) -> int:
        return len(self._nodes)

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    def get_layer(self, index: int) -> ILayer:
        return ILayer(*self._nodes[index])


class ParserError(_Strict):
    _trt = "ParserError"

    def __init__(self, desc: str) -> None:
        self._desc = desc

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return f"In node -1 (parseGraph): INVALID_GRAPH: {self._desc}"


def _dims(value_info) -> tuple[int, ...]:
    return tuple(d.dim_value if d.dim_value > 0 else -1 for d in value_info.type.tensor_type.shape.dim)


class OnnxParser(_Strict):
    _trt = "OnnxParser"

    def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
        self._network = network
        self._errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def parse_from_file(self, model: str) -> bool:
        with open(model, "rb") as f:
            return self.parse(f.read())

    def parse(self, model: bytes, path: str | None = None) -> bool:
        network = self._network
        if not network._explicit_batch:
            self._errors.append(ParserError("the ONNX parser only supports networks with an explicit batch "
                                            "dimension (create_network(1 << EXPLICIT_BATCH))"))
            return False
        try:
            proto = onnx.load_from_string(model)
            onnx.checker.check_model(proto)
        except Exception as e:
            self._errors.append(ParserError(f"failed to parse ONNX model: {e}"))
            return False
        init = {t.name for t in proto.graph.initializer}
        network._inputs = [ITensor(v.name, _dims(v)) for v in proto.graph.input if v.name not in init]
        network._outputs = [ITensor(v.name, _dims(v)) for v in proto.graph.output]
        network._nodes = [(n.name, n.op_type) for n in proto.graph.node]
        network._fp16 = any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
        network._onnx = model
        return True


class IOptimizationProfile(_Strict):
    _trt = "IOptimizationProfile"

    def __init__(self) -> None:
        self._shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, input: str, min, opt, max) -> None:  # TensorRT's parameter names
        self._shapes[input] = (tuple(min), tuple(opt), tuple(max))


def _device() -> list:
    return [STATE.gpu, list(STATE.compute_capability)]


class ITimingCache(_Strict):
    """Serialized as JSON with the header TensorRT verifies: release and CUDA device of the build that wrote it."""

    _trt = "ITimingCache"

    def __init__(self, data: bytes) -> None:
        saved = json.loads(data.decode()) if data else {"version": STATE.version, "device": _device(), "entries": []}
        self._version, self._device = saved["version"], saved["device"]
        self._entries: set[str] = set(saved["entries"])

    def serialize(self) -> bytes:
        return json.dumps({"version": self._version, "device": self._device,
                           "entries": sorted(self._entries)}).encode()


class IBuilderConfig(_Strict):
    _trt = "IBuilderConfig"

    def __init__(self) -> None:
        self._flags: set[str] = set()
        self.default_device_type = _enum("DeviceType").GPU
        self.DLA_core = -1
        self._pools: dict[str, int] = {}
        self._profiles: list[IOptimizationProfile] = []
        self._calibration_profile: IOptimizationProfile | None = None
        self.profiling_verbosity = _enum("ProfilingVerbosity").LAYER_NAMES_ONLY
        self._calibrator = None
        self._timing_cache: ITimingCache | None = None
        self._network: INetworkDefinition | None = None

    def set_flag(self, flag) -> None:
        self._flags.add(flag.name)

    def get_flag(self, flag) -> bool:
        return flag.name in self._flags

    def set_memory_pool_limit(self, pool, pool_size: int) -> None:
        self._pools[pool.name] = int(pool_size)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        self._calibration_profile = profile
        return True

    @property
    def int8_calibrator(self):
        return self._calibrator

    @int8_calibrator.setter
    def int8_calibrator(self, calibrator) -> None:
        self._calibrator = calibrator

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        return ITimingCache(bytes(serialized_timing_cache))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        if cache._version != STATE.version:  # another release's cache is never usable
            STATE.log.append(f"[E] timing cache from TensorRT {cache._version}, this is {STATE.version}")
            return False
        if cache._device != _device() and not ignore_mismatch:
            STATE.log.append(f"[E] timing cache was created on {cache._device}, this device is {_device()}")
            return False
        self._timing_cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._timing_cache

    def can_run_on_DLA(self, layer: ILayer) -> bool:
        """DLA runs no explicit quantization: in a network with Q/DQ layers no layer runs on DLA."""
        network = self._network
        return layer._op in DLA_OPS and not (network and any(op == "QuantizeLinear" for _, op in network._nodes))


class IInt8EntropyCalibrator2(_Strict):
    """Base class: subclasses must call ``IInt8EntropyCalibrator2.__init__(self)`` like with the real bindings."""

    _trt = "IInt8EntropyCalibrator2"

    def __init__(self) -> None:
        self._initialised = True


def _fmt(kind: str) -> str:
    return {"Int8": "Thirty-two wide channel vectorized row major Int8 format",
            "FP16": "Channel major FP16 format where channel % 2 == 0", "FP32": "Row major linear FP32"}[kind]


class Builder(_Strict):
    _trt = "Builder"

    def __init__(self, logger: Logger) -> None:
        self._logger = logger
        self._networks: list[INetworkDefinition] = []

    @property
    def num_DLA_cores(self) -> int:
        return STATE.dla_cores

    @property
    def platform_has_fast_fp16(self) -> bool:
        return True

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        values = STATE.api["enums"]["NetworkDefinitionCreationFlag"]
        explicit = "EXPLICIT_BATCH" not in values or STATE.major >= 10 or bool(flags & (1 << values["EXPLICIT_BATCH"]))
        strongly = "STRONGLY_TYPED" in values and bool(flags & (1 << values["STRONGLY_TYPED"]))
        network = INetworkDefinition(explicit, strongly)
        self._networks.append(network)
        return network

    def create_builder_config(self) -> IBuilderConfig:
        config = IBuilderConfig()
        config._network = self._networks[-1] if self._networks else None  # what can_run_on_DLA is asked about
        return config

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def _fail(self, msg: str) -> None:
        STATE.log.append(f"[E] {msg}")

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
        if not network._inputs:
            return self._fail("network has no inputs (was the ONNX parsed?)")
        tensor = network._inputs[0]
        dynamic = -1 in tensor.shape
        profile = next((p._shapes[tensor.name] for p in config._profiles if tensor.name in p._shapes), None)
        if dynamic and profile is None:
            return self._fail(f"network has dynamic input {tensor.name} but no optimization profile")
        if profile is not None:
            low, opt, high = profile
            if any(len(s) != len(tensor.shape) for s in profile) or not all(
                    a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
                return self._fail(f"invalid optimization profile for {tensor.name}: {profile}")
            if any(d != -1 and d != s for s in profile for d, s in zip(tensor.shape, s, strict=True)):
                return self._fail(f"profile {profile} does not match the static dims of {tensor.shape}")
        else:
            low = opt = high = tensor.shape
        ops = [op for _, op in network._nodes]
        has_qdq = "QuantizeLinear" in ops
        flags = config._flags
        if network._strongly_typed and flags & set(PRECISION_FLAGS):
            return self._fail(f"API Usage Error: precision flags {sorted(flags & set(PRECISION_FLAGS))} are not "
                              "allowed for a strongly typed network (types come from the network)")
        int8, fp16 = "INT8" in flags, "FP16" in flags
        if has_qdq and not int8 and not network._strongly_typed:
            return self._fail("network has Q/DQ layers but the INT8 builder flag is not set")
        calibration: dict = {}
        if int8 and not has_qdq:
            calibrator = config._calibrator
            if calibrator is None:
                return self._fail("INT8 enabled without Q/DQ layers, dynamic ranges or a calibrator")
            if not getattr(calibrator, "_initialised", False):
                raise TypeError("calibrator subclass did not call IInt8EntropyCalibrator2.__init__")
            if dynamic and config._calibration_profile is None:
                return self._fail("calibration with dynamic shapes needs set_calibration_profile")
            calibration = self._calibrate(calibrator, tensor, config)
            if not calibration:
                return None
        half = fp16 or (network._strongly_typed and network._fp16)
        dla = config.default_device_type == _enum("DeviceType").DLA
        on_gpu: list[str] = []
        if dla:
            if not 0 <= config.DLA_core < STATE.dla_cores:
                return self._fail(f"DLA core {config.DLA_core} does not exist ({STATE.dla_cores} cores)")
            if not (half or int8 or (has_qdq and network._strongly_typed)):
                return self._fail("DLA requires FP16 or INT8 precision")
            if low != high:
                return self._fail("DLA does not support dynamic shapes: optimization profile min must equal max")
            on_gpu = [name for name, op in network._nodes if op not in DLA_OPS or has_qdq]
            if on_gpu and "GPU_FALLBACK" not in flags:
                return self._fail(f"layer {on_gpu[0]} cannot run on DLA"
                                  + (" (DLA does not support explicit quantization)" if has_qdq else "")
                                  + " and GPU fallback is not enabled")
        if config._timing_cache is not None:
            config._timing_cache._entries.update(f"{op}:{'int8' if int8 else 'fp16' if half else 'fp32'}"
                                                 for op in ops)
        verbosity = config.profiling_verbosity.name
        STATE.builds.append({
            "flags": sorted(flags), "device_type": config.default_device_type.name,
            "dla_core": config.DLA_core, "workspace": config._pools.get("WORKSPACE"),
            "profile": {"min": list(low), "opt": list(opt), "max": list(high)} if profile else None,
            "has_qdq": has_qdq, "explicit_batch": network._explicit_batch,
            "strongly_typed": network._strongly_typed, "fp16_graph": network._fp16, "ops": ops, "input": tensor.name,
            "verbosity": verbosity, "timing_cache": config._timing_cache is not None, "on_gpu": on_gpu,
            **calibration})
        quantized = (has_qdq and (int8 or network._strongly_typed)) or calibration != {}
        kind = "Int8" if quantized else "FP16" if half or dla else "FP32"
        header = {"version": STATE.version, "compute_capability": list(STATE.compute_capability),
                  "flags": sorted(flags), "dla": dla, "round_fp16": fp16 and not network._strongly_typed,
                  "inputs": [[t.name, list(t.shape)] for t in network._inputs],
                  "outputs": [[t.name, list(t.shape)] for t in network._outputs],
                  "profile": [list(low), list(opt), list(high)],
                  "layers": [[name, op, _fmt(kind)] for name, op in network._nodes
                             if op not in ("QuantizeLinear", "DequantizeLinear")],
                  "detailed": verbosity == "DETAILED"}
        return MAGIC + json.dumps(header).encode() + b"\n" + network._onnx

    def _calibrate(self, calibrator, tensor: ITensor, config: IBuilderConfig) -> dict:
        cached = calibrator.read_calibration_cache()
        if cached:
            return {"calibration": "from cache", "calibrated_batches": 0}
        size = calibrator.get_batch_size()
        shape = config._calibration_profile._shapes[tensor.name][1] if config._calibration_profile else tensor.shape
        if shape[0] != size:
            self._fail(f"calibrator batch size {size} differs from the calibration profile batch {shape[0]}")
            return {}
        nbytes = int(np.prod(shape)) * 4
        amax, batches = 0.0, 0
        while (pointers := calibrator.get_batch([tensor.name])) is not None:
            data = STATE.allocation(int(pointers[0]), nbytes).view(np.float32)
            amax, batches = max(amax, float(np.abs(data).max())), batches + 1
        if not batches:
            self._fail("calibration failure: the calibrator gave no batches")
            return {}
        calibrator.write_calibration_cache(json.dumps({tensor.name: amax}).encode())
        return {"calibration": "calibrated", "calibrated_batches": batches}


class ICudaEngine(_Strict):
    _trt = "ICudaEngine"

    def __init__(self, header: dict, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        self._header = header
        self._tensors = {name: ("INPUT", tuple(shape)) for name, shape in header["inputs"]}
        self._tensors.update({name: ("OUTPUT", tuple(shape)) for name, shape in header["outputs"]})
        # Q/DQ pairs as float ops: TensorRT's int8 accumulates in int32, while ORT's fused x86 int8 kernels
        # would add their own int16 saturation on CPUs without VNNI
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    @property
    def num_io_tensors(self) -> int:
        return len(self._tensors)

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    def get_tensor_name(self, index: int) -> str:
        return list(self._tensors)[index]

    def get_tensor_mode(self, name: str):
        return getattr(_enum("TensorIOMode"), self._tensors[name][0])

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._tensors[name][1]

    def get_tensor_dtype(self, name: str):
        return _enum("DataType").FLOAT

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        if self._tensors[name][0] != "INPUT" or profile_index != 0:
            raise ValueError(f"no profile {profile_index} for input {name}")
        return [tuple(s) for s in self._header["profile"]]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def create_engine_inspector(self) -> EngineInspector:
        return EngineInspector(self)


class EngineInspector(_Strict):
    """Layer information; TensorRT 11's JSON names the I/O "I/O Tensors" and splits "Format/Datatype"."""

    _trt = "EngineInspector"

    def __init__(self, engine: ICudaEngine) -> None:
        self._engine = engine
        self._context: IExecutionContext | None = None

    @property
    def execution_context(self) -> IExecutionContext | None:
        return self._context

    @execution_context.setter
    def execution_context(self, context: IExecutionContext) -> None:
        self._context = context

    def get_engine_information(self, format) -> str:
        header = self._engine._header
        io = "I/O Tensors" if STATE.major >= 11 else "Bindings"
        if not header["detailed"]:
            return json.dumps({"Layers": [name for name, _, _ in header["layers"]], io: list(self._engine._tensors)})
        dynamic = any(-1 in shape for mode, shape in self._engine._tensors.values() if mode == "INPUT")
        shapes_known = self._context is not None and bool(self._context._input_shapes)
        layers = []
        for name, op, fmt in header["layers"]:
            fmt = fmt if shapes_known or not dynamic else "N/A due to dynamic shapes"
            if STATE.major >= 11:
                kind = next((k for k in ("Int8", "FP16", "FP32") if k in fmt), fmt)
                output = {"Name": f"{name}_out", "Format": fmt, "Datatype": kind}
            else:
                output = {"Name": f"{name}_out", "Format/Datatype": fmt}
            layers.append({"Name": name, "LayerType": op, "Outputs": [output]})
        return json.dumps({"Layers": layers, io: list(self._engine._tensors)})


class IExecutionContext(_Strict):
    _trt = "IExecutionContext"

    def __init__(self, engine: ICudaEngine) -> None:
        self._engine = engine
        self._input_shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape) -> bool:
        shape = tuple(int(s) for s in shape)
        low, _, high = self._engine._header["profile"]
        if len(shape) != len(low) or not all(a <= s <= b for a, s, b in zip(low, shape, high, strict=True)):
            STATE.log.append(f"[E] input shape {shape} outside the profile {low}..{high}")
            return False
        self._input_shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        mode, shape = self._engine._tensors[name]
        if mode == "INPUT":
            return self._input_shapes.get(name, shape)
        batch = next(iter(self._input_shapes.values()), shape)[0]
        return (batch, *shape[1:])

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if name not in self._engine._tensors:
            return False
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        engine = self._engine
        if set(self._addresses) != set(engine._tensors) or len(self._input_shapes) != 1:
            STATE.log.append("[E] execute_async_v3: input shapes or tensor addresses not all set")
            return False
        if stream_handle not in STATE.streams:
            raise RuntimeError(f"cudaErrorInvalidResourceHandle: stream {stream_handle}")
        fp16 = engine._header["round_fp16"]
        shapes = {n: self.get_tensor_shape(n) for n in engine._tensors}
        addresses = dict(self._addresses)

        def run() -> None:
            feeds = {}
            for name, (mode, _) in engine._tensors.items():
                if mode == "INPUT":
                    nbytes = int(np.prod(shapes[name])) * 4
                    x = STATE.allocation(addresses[name], nbytes).view(np.float32).reshape(shapes[name]).copy()
                    feeds[name] = x.astype(np.float16).astype(np.float32) if fp16 else x
            outputs = [o.name for o in engine._session.get_outputs()]
            for name, value in zip(outputs, engine._session.run(outputs, feeds), strict=True):
                value = np.asarray(value, np.float32)
                value = value.astype(np.float16).astype(np.float32) if fp16 else value
                STATE.allocation(addresses[name], value.nbytes)[:] = value.reshape(-1).view(np.uint8)

        STATE.streams[stream_handle].append(run)
        return True


class Runtime(_Strict):
    _trt = "Runtime"

    def __init__(self, logger: Logger) -> None:
        self.DLA_core = -1

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        data = bytes(serialized_engine)
        if not data.startswith(MAGIC):
            STATE.log.append("[E] deserialize: magic tag does not match (not a TensorRT plan)")
            return None
        header_line, _, onnx_bytes = data[len(MAGIC):].partition(b"\n")
        header = json.loads(header_line)
        if header["version"] != STATE.version:
            STATE.log.append(f"[E] serialization version {header['version']} does not match {STATE.version}")
            return None
        if tuple(header["compute_capability"]) != STATE.compute_capability:
            STATE.log.append("[E] engine plan built for a different compute capability")
            return None
        return ICudaEngine(header, onnx_bytes)


TENSORRT_NAMES = (Logger, nptype, Builder, OnnxParser, Runtime, IInt8EntropyCalibrator2, ITensor, ILayer,
                  INetworkDefinition, ParserError, IOptimizationProfile, ITimingCache, IBuilderConfig, ICudaEngine,
                  EngineInspector, IExecutionContext)


def tensorrt_module(recorded: str, version: str) -> types.ModuleType:
    """A ``tensorrt`` module with exactly ``recorded``'s names: real enums, fake classes, the rest refused."""
    surface = api(recorded)
    module = types.ModuleType("tensorrt")
    module.__version__ = version
    STATE.enums = {name: enum.IntEnum(name.rsplit(".", 1)[-1], values) for name, values in surface["enums"].items()}
    for name, values in STATE.enums.items():
        if "." not in name:
            setattr(module, name, values)
    for obj in TENSORRT_NAMES:
        if obj.__name__ in surface["module"]:
            setattr(module, obj.__name__, obj)
    for nested, values in STATE.enums.items():  # Logger.WARNING: values of the nested ILogger.Severity
        owner, _, _ = nested.partition(".")
        if owner == "ILogger":
            for member in values:
                type.__setattr__(Logger, member.name, member)

    def missing(name: str):
        if name in surface["module"]:
            raise NotImplementedError(f"fake_tensorrt: tensorrt.{name} exists in TensorRT {version} but is not "
                                      "emulated; add it to tests/fakes/fake_tensorrt.py")
        raise AttributeError(f"module 'tensorrt' has no attribute '{name}' (TensorRT {version})")

    module.__getattr__ = missing
    return module


# ----------------------------------------------------------------------------- pycuda


class DeviceAllocation:
    def __init__(self, address: int, nbytes: int) -> None:
        self.address, self.nbytes = address, nbytes

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        STATE.memory.pop(self.address, None)


class Device:
    def __init__(self, ordinal: int) -> None:
        if ordinal != 0:
            raise RuntimeError(f"cuDeviceGet failed: invalid device ordinal {ordinal}")

    def name(self) -> str:
        return STATE.gpu

    def compute_capability(self) -> tuple[int, int]:
        return STATE.compute_capability


def _need_context() -> None:
    if not STATE.context:
        raise RuntimeError("cuMemAlloc failed: invalid device context (import pycuda.autoinit first)")


def mem_alloc(nbytes: int) -> DeviceAllocation:
    _need_context()
    return DeviceAllocation(STATE.alloc(nbytes), int(nbytes))


def pagelocked_empty(shape, dtype) -> np.ndarray:
    _need_context()
    return np.empty(shape, dtype)


def _host_bytes(array: np.ndarray) -> np.ndarray:
    if not array.flags.c_contiguous:
        raise ValueError("host buffer must be contiguous")
    return array.reshape(-1).view(np.uint8)


def memcpy_htod(dest, src: np.ndarray) -> None:
    _need_context()
    STATE.allocation(int(dest), src.nbytes)[:] = _host_bytes(src)


def memcpy_htod_async(dest, src: np.ndarray, stream: Stream) -> None:
    _need_context()
    STATE.streams[stream.handle].append(lambda: memcpy_htod(dest, src))  # reads the host buffer when it runs


def memcpy_dtoh_async(dest: np.ndarray, src, stream: Stream) -> None:
    _need_context()

    def run() -> None:
        _host_bytes(dest)[:] = STATE.allocation(int(src), dest.nbytes)

    STATE.streams[stream.handle].append(run)


class Stream:
    def __init__(self) -> None:
        _need_context()
        self.handle = 0x5000 + len(STATE.streams)
        STATE.streams[self.handle] = []

    def synchronize(self) -> None:
        queue = STATE.streams[self.handle]
        while queue:
            queue.pop(0)()


class _AutoinitLoader(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import pycuda.autoinit`` run its side effect (a current CUDA context), as the real module does."""

    def find_spec(self, name, path, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "pycuda.autoinit" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        STATE.context = True
        module.device = Device(0)


# ----------------------------------------------------------------------------- cuda-python (cuda.bindings.runtime)


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidValue = 1
    cudaErrorIllegalAddress = 700


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


class cudaStream_t:
    """An opaque stream whose ``int()`` is the handle TensorRT's execute_async_v3 takes, as in cuda-python."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __int__(self) -> int:
        return self.handle


class cudaDeviceProp:
    def __init__(self) -> None:
        self.name = STATE.gpu.encode() + b"\x00" * 4  # a fixed-size char array in C
        self.major, self.minor = STATE.compute_capability


def cudaGetDeviceProperties(device: int):
    return (cudaError_t.cudaSuccess, cudaDeviceProp()) if device == 0 else (cudaError_t.cudaErrorInvalidValue, None)


def cudaMalloc(size: int):
    return cudaError_t.cudaSuccess, STATE.alloc(size)


HOST_PINNED: list[np.ndarray] = []  # keeps cudaMallocHost buffers alive (the real ones live until cudaFreeHost)


def cudaMallocHost(size: int):
    buf = np.zeros(int(size), np.uint8)
    HOST_PINNED.append(buf)
    return cudaError_t.cudaSuccess, buf.ctypes.data


def _copy(dst: int, src: int, count: int, kind: cudaMemcpyKind) -> cudaError_t:
    """Real byte copies between host addresses and the fake device memory."""
    try:
        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            ctypes.memmove(STATE.allocation(int(dst), count).ctypes.data, int(src), count)
        elif kind == cudaMemcpyKind.cudaMemcpyDeviceToHost:
            ctypes.memmove(int(dst), STATE.allocation(int(src), count).ctypes.data, count)
        else:
            return cudaError_t.cudaErrorInvalidValue
    except RuntimeError:
        return cudaError_t.cudaErrorIllegalAddress
    return cudaError_t.cudaSuccess


def cudaMemcpy(dst: int, src: int, count: int, kind: cudaMemcpyKind):
    return (_copy(dst, src, count, kind),)


def cudaMemcpyAsync(dst: int, src: int, count: int, kind: cudaMemcpyKind, stream: cudaStream_t):
    if int(stream) not in STATE.streams:
        return (cudaError_t.cudaErrorInvalidValue,)
    STATE.streams[int(stream)].append(lambda: _copy(dst, src, count, kind))  # reads the host buffer when it runs
    return (cudaError_t.cudaSuccess,)


def cudaStreamCreate():
    handle = 0x6000 + len(STATE.streams)
    STATE.streams[handle] = []
    return cudaError_t.cudaSuccess, cudaStream_t(handle)


def cudaStreamSynchronize(stream: cudaStream_t):
    queue = STATE.streams[int(stream)]
    while queue:
        queue.pop(0)()
    return (cudaError_t.cudaSuccess,)


STATE = FakeState()


def install(monkeypatch, version: str = "10.3.0", gpu: str = "Orin", compute_capability: tuple[int, int] = (8, 7),
            dla_cores: int = 2, pycuda: bool = True, cuda_python: bool = False) -> FakeState:
    """Put a fake ``tensorrt`` of one release (and ``pycuda`` and/or cuda-python) into ``sys.modules`` for one test.

    ``version`` is a recorded release (:data:`SUPPORTED`) or a later patch of one (``10.7.0`` takes
    10.3.0's surface under its own version string, for version-mismatch tests).
    Without ``cuda_python`` the ``cuda`` package is made unimportable, so a real one on the host cannot leak in.
    """
    global STATE
    recorded = version if version in SUPPORTED else next(
        (v for v in reversed(SUPPORTED) if v.split(".")[0] == version.split(".")[0]), None)
    if recorded is None:
        raise ValueError(f"no recorded TensorRT surface for {version} (have {', '.join(SUPPORTED)})")
    STATE = FakeState(version=version, gpu=gpu, compute_capability=compute_capability, dla_cores=dla_cores)
    STATE.recorded = recorded
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt_module(recorded, version))
    monkeypatch.delitem(sys.modules, "pycuda.autoinit", raising=False)
    _install_cuda_python(monkeypatch, cuda_python)
    if not pycuda:
        monkeypatch.setitem(sys.modules, "pycuda", None)  # import fails like an absent package
        monkeypatch.setitem(sys.modules, "pycuda.driver", None)
        return STATE
    package = types.ModuleType("pycuda")
    package.__path__ = []  # a package, so pycuda.autoinit is found through the finder
    driver = types.ModuleType("pycuda.driver")
    for obj in (Device, DeviceAllocation, Stream, mem_alloc, pagelocked_empty, memcpy_htod, memcpy_htod_async,
                memcpy_dtoh_async):
        setattr(driver, obj.__name__, obj)
    package.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setattr(sys, "meta_path", [_AutoinitLoader(), *sys.meta_path])
    return STATE


def _install_cuda_python(monkeypatch, present: bool) -> None:
    names = ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart")
    if not present:
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)
        return
    runtime = types.ModuleType("cuda.bindings.runtime")
    for obj in (cudaError_t, cudaMemcpyKind, cudaStream_t, cudaGetDeviceProperties, cudaMalloc, cudaMallocHost,
                cudaMemcpy, cudaMemcpyAsync, cudaStreamCreate, cudaStreamSynchronize):
        setattr(runtime, obj.__name__, obj)
    package, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    package.__path__, bindings.__path__ = [], []
    package.bindings, bindings.runtime = bindings, runtime
    for name, module in zip(names, (package, bindings, runtime, None), strict=True):
        monkeypatch.setitem(sys.modules, name, module)


def uninstall() -> None:
    """Drop the ``pycuda.autoinit`` module an import created (monkeypatch restores everything else)."""
    sys.modules.pop("pycuda.autoinit", None)
