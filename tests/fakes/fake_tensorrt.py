"""A faithful fake of the TensorRT and pycuda API surface edge-fer calls, for machines without a GPU.

Faithful means the same names and call signatures, the failure modes edge-fer must
handle (None from ``build_serialized_network`` and ``deserialize_cuda_engine``, False
from ``set_input_shape`` outside the profile, parser errors, a TensorRT 8 network
without the explicit-batch flag), and real computation: the "plan" embeds the ONNX it
was built from and executes it with ONNX Runtime on bytes that travel through fake
device memory.  Copies and execution queued on a stream only run at
``synchronize()``, so a missing copy, a wrong address or a missing synchronize gives
wrong outputs.  FP16 builds round inputs and outputs through float16; INT8 builds need
Q/DQ nodes or a calibrator (which is really driven: batches are read from device
memory, the cache is read and written).  What is *not* emulated: kernel selection,
real INT8 arithmetic of implicitly calibrated engines (they run the float graph) and
DLA numerics.  Every build is recorded in ``FakeState.builds`` for assertions.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.abc
import importlib.util
import json
import sys
import types
from dataclasses import dataclass, field

import numpy as np
import onnx

MAGIC = b"FAKE-TENSORRT-PLAN\n"


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


# ----------------------------------------------------------------------------- tensorrt


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity: int = 2) -> None:
        self.min_severity = min_severity


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class BuilderFlag(enum.Enum):
    FP16 = "FP16"
    INT8 = "INT8"
    GPU_FALLBACK = "GPU_FALLBACK"
    STRICT_TYPES = "STRICT_TYPES"


class DeviceType(enum.Enum):
    GPU = "GPU"
    DLA = "DLA"


class MemoryPoolType(enum.Enum):
    WORKSPACE = "WORKSPACE"


class ProfilingVerbosity(enum.Enum):
    LAYER_NAMES_ONLY = "LAYER_NAMES_ONLY"
    DETAILED = "DETAILED"
    NONE = "NONE"


class LayerInformationFormat(enum.Enum):
    ONELINE = "ONELINE"
    JSON = "JSON"


class TensorIOMode(enum.Enum):
    NONE = "NONE"
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class DataType(enum.Enum):
    FLOAT = "FLOAT"
    HALF = "HALF"
    INT8 = "INT8"
    INT32 = "INT32"


def nptype(dtype: DataType):
    return {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
            DataType.INT32: np.int32}[dtype]


@dataclass
class ITensor:
    name: str
    shape: tuple[int, ...]
    dtype: DataType = DataType.FLOAT


class INetworkDefinition:
    def __init__(self, explicit_batch: bool) -> None:
        self.explicit_batch = explicit_batch
        self.inputs: list[ITensor] = []
        self.outputs: list[ITensor] = []
        self.onnx_bytes = b""
        self.nodes: list[tuple[str, str, list[str]]] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    @property
    def num_layers(self) -> int:
        return len(self.nodes)

    def get_input(self, i: int) -> ITensor:
        return self.inputs[i]

    def get_output(self, i: int) -> ITensor:
        return self.outputs[i]


class ParserError:
    def __init__(self, desc: str) -> None:
        self._desc = desc

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return f"In node -1 (parseGraph): INVALID_GRAPH: {self._desc}"


def _dims(value_info) -> tuple[int, ...]:
    return tuple(d.dim_value if d.dim_value > 0 else -1 for d in value_info.type.tensor_type.shape.dim)


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
        self.network = network
        self.errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> ParserError:
        return self.errors[i]

    def parse_from_file(self, path: str) -> bool:
        with open(path, "rb") as f:
            return self.parse(f.read())

    def parse(self, data: bytes, path: str | None = None) -> bool:
        if not self.network.explicit_batch:
            self.errors.append(ParserError("the ONNX parser only supports networks with an explicit batch "
                                           "dimension (create_network(1 << EXPLICIT_BATCH))"))
            return False
        try:
            model = onnx.load_from_string(data)
            onnx.checker.check_model(model)
        except Exception as e:
            self.errors.append(ParserError(f"failed to parse ONNX model: {e}"))
            return False
        init = {t.name for t in model.graph.initializer}
        self.network.inputs = [ITensor(v.name, _dims(v)) for v in model.graph.input if v.name not in init]
        self.network.outputs = [ITensor(v.name, _dims(v)) for v in model.graph.output]
        self.network.nodes = [(n.name, n.op_type, list(n.input)) for n in model.graph.node]
        self.network.onnx_bytes = data
        return True


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, name: str, min, opt, max) -> None:  # TensorRT's parameter names
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class ITimingCache:
    def __init__(self, data: bytes) -> None:
        self.entries: set[str] = set(json.loads(data.decode())) if data else set()

    def serialize(self) -> bytes:
        return json.dumps(sorted(self.entries)).encode()


class IBuilderConfig:
    def __init__(self) -> None:
        self.flags: set[BuilderFlag] = set()
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1
        self.pools: dict[MemoryPoolType, int] = {}
        self.profiles: list[IOptimizationProfile] = []
        self.calibration_profile: IOptimizationProfile | None = None
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self.int8_calibrator = None
        self.timing_cache: ITimingCache | None = None

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return flag in self.flags

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pools[pool] = int(size)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        self.calibration_profile = profile
        return True

    def create_timing_cache(self, data: bytes) -> ITimingCache:
        return ITimingCache(bytes(data))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self.timing_cache


class IInt8EntropyCalibrator2:
    """Base class: subclasses must call ``IInt8EntropyCalibrator2.__init__(self)`` like with the real bindings."""

    def __init__(self) -> None:
        self._initialised = True


def _fmt(int8: bool, fp16: bool) -> str:
    if int8:
        return "Thirty-two wide channel vectorized row major Int8 format"
    return "Channel major FP16 format where channel % 2 == 0" if fp16 else "Row major linear FP32"


class Builder:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    @property
    def num_DLA_cores(self) -> int:
        return STATE.dla_cores

    @property
    def platform_has_fast_fp16(self) -> bool:
        return True

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        explicit = bool(flags & (1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)))
        return INetworkDefinition(explicit or int(STATE.version.split(".")[0]) >= 10)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def _fail(self, msg: str) -> None:
        STATE.log.append(f"[E] {msg}")

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
        if not network.inputs:
            return self._fail("network has no inputs (was the ONNX parsed?)")
        tensor = network.inputs[0]
        dynamic = -1 in tensor.shape
        profile = next((p.shapes[tensor.name] for p in config.profiles if tensor.name in p.shapes), None)
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
        ops = [op for _, op, _ in network.nodes]
        has_qdq = "QuantizeLinear" in ops
        int8, fp16 = BuilderFlag.INT8 in config.flags, BuilderFlag.FP16 in config.flags
        if has_qdq and not int8:
            return self._fail("network has Q/DQ layers but the INT8 builder flag is not set")
        calibration: dict = {}
        if int8 and not has_qdq:
            calibrator = config.int8_calibrator
            if calibrator is None:
                return self._fail("INT8 enabled without Q/DQ layers, dynamic ranges or a calibrator")
            if not getattr(calibrator, "_initialised", False):
                raise TypeError("calibrator subclass did not call IInt8EntropyCalibrator2.__init__")
            if dynamic and config.calibration_profile is None:
                return self._fail("calibration with dynamic shapes needs set_calibration_profile")
            calibration = self._calibrate(calibrator, tensor, config)
            if not calibration:
                return None
        dla = config.default_device_type == DeviceType.DLA
        if dla:
            if not 0 <= config.DLA_core < STATE.dla_cores:
                return self._fail(f"DLA core {config.DLA_core} does not exist ({STATE.dla_cores} cores)")
            if not (fp16 or int8):
                return self._fail("DLA requires FP16 or INT8 precision")
            if low != high:
                return self._fail("DLA does not support dynamic shapes: optimization profile min must equal max")
        if config.timing_cache is not None:
            config.timing_cache.entries.update(f"{op}:{'int8' if int8 else 'fp16' if fp16 else 'fp32'}" for op in ops)
        STATE.builds.append({
            "flags": sorted(f.value for f in config.flags), "device_type": config.default_device_type.value,
            "dla_core": config.DLA_core, "workspace": config.pools.get(MemoryPoolType.WORKSPACE),
            "profile": {"min": list(low), "opt": list(opt), "max": list(high)} if profile else None,
            "has_qdq": has_qdq, "explicit_batch": network.explicit_batch, "ops": ops, "input": tensor.name,
            "verbosity": config.profiling_verbosity.value, "timing_cache": config.timing_cache is not None,
            **calibration})
        header = {"version": STATE.version, "compute_capability": list(STATE.compute_capability),
                  "flags": sorted(f.value for f in config.flags), "dla": dla,
                  "inputs": [[t.name, list(t.shape)] for t in network.inputs],
                  "outputs": [[t.name, list(t.shape)] for t in network.outputs],
                  "profile": [list(low), list(opt), list(high)],
                  "layers": [[name, op, _fmt(int8 and (has_qdq or calibration != {}), fp16 or dla)]
                             for name, op, _ in network.nodes if op not in ("QuantizeLinear", "DequantizeLinear")],
                  "detailed": config.profiling_verbosity == ProfilingVerbosity.DETAILED}
        return MAGIC + json.dumps(header).encode() + b"\n" + network.onnx_bytes

    def _calibrate(self, calibrator, tensor: ITensor, config: IBuilderConfig) -> dict:
        cached = calibrator.read_calibration_cache()
        if cached:
            return {"calibration": "from cache", "calibrated_batches": 0}
        size = calibrator.get_batch_size()
        shape = config.calibration_profile.shapes[tensor.name][1] if config.calibration_profile else tensor.shape
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


class ICudaEngine:
    def __init__(self, header: dict, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        self.header = header
        self.tensors = {name: (TensorIOMode.INPUT, tuple(shape)) for name, shape in header["inputs"]}
        self.tensors.update({name: (TensorIOMode.OUTPUT, tuple(shape)) for name, shape in header["outputs"]})
        # Q/DQ pairs as float ops: TensorRT's int8 accumulates in int32, while ORT's fused x86 int8 kernels
        # would add their own int16 saturation on CPUs without VNNI
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    def get_tensor_name(self, i: int) -> str:
        return list(self.tensors)[i]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self.tensors[name][0]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name][1]

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType.FLOAT

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        if self.tensors[name][0] != TensorIOMode.INPUT or profile_index != 0:
            raise ValueError(f"no profile {profile_index} for input {name}")
        return [tuple(s) for s in self.header["profile"]]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def create_engine_inspector(self) -> IEngineInspector:
        return IEngineInspector(self)


class IEngineInspector:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine

    def get_engine_information(self, fmt: LayerInformationFormat) -> str:
        layers = self.engine.header["layers"]
        if not self.engine.header["detailed"]:
            return json.dumps({"Layers": [name for name, _, _ in layers], "Bindings": list(self.engine.tensors)})
        return json.dumps({"Layers": [{"Name": name, "LayerType": op, "Outputs": [{"Format/Datatype": f}]}
                                      for name, op, f in layers], "Bindings": list(self.engine.tensors)})


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape) -> bool:
        shape = tuple(int(s) for s in shape)
        low, _, high = self.engine.header["profile"]
        if len(shape) != len(low) or not all(a <= s <= b for a, s, b in zip(low, shape, high, strict=True)):
            STATE.log.append(f"[E] input shape {shape} outside the profile {low}..{high}")
            return False
        self.input_shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        mode, shape = self.engine.tensors[name]
        if mode == TensorIOMode.INPUT:
            return self.input_shapes.get(name, shape)
        batch = next(iter(self.input_shapes.values()), shape)[0]
        return (batch, *shape[1:])

    def set_tensor_address(self, name: str, address: int) -> bool:
        if name not in self.engine.tensors:
            return False
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        if set(self.addresses) != set(self.engine.tensors) or len(self.input_shapes) != 1:
            STATE.log.append("[E] execute_async_v3: input shapes or tensor addresses not all set")
            return False
        if stream_handle not in STATE.streams:
            raise RuntimeError(f"cudaErrorInvalidResourceHandle: stream {stream_handle}")
        fp16 = "FP16" in self.engine.header["flags"]
        shapes = {n: self.get_tensor_shape(n) for n in self.engine.tensors}
        addresses = dict(self.addresses)

        def run() -> None:
            feeds = {}
            for name, (mode, _) in self.engine.tensors.items():
                if mode == TensorIOMode.INPUT:
                    nbytes = int(np.prod(shapes[name])) * 4
                    x = STATE.allocation(addresses[name], nbytes).view(np.float32).reshape(shapes[name]).copy()
                    feeds[name] = x.astype(np.float16).astype(np.float32) if fp16 else x
            outputs = [o.name for o in self.engine.session.get_outputs()]
            for name, value in zip(outputs, self.engine.session.run(outputs, feeds), strict=True):
                value = np.asarray(value, np.float32)
                value = value.astype(np.float16).astype(np.float32) if fp16 else value
                STATE.allocation(addresses[name], value.nbytes)[:] = value.reshape(-1).view(np.uint8)

        STATE.streams[stream_handle].append(run)
        return True


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.DLA_core = -1

    def deserialize_cuda_engine(self, data: bytes) -> ICudaEngine | None:
        data = bytes(data)
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
    """Put fake ``tensorrt`` (and ``pycuda`` and/or cuda-python) into ``sys.modules`` for one test.

    Without ``cuda_python`` the ``cuda`` package is made unimportable, so a real one on the host cannot leak in.
    """
    global STATE
    STATE = FakeState(version=version, gpu=gpu, compute_capability=compute_capability, dla_cores=dla_cores)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    for obj in (Logger, NetworkDefinitionCreationFlag, BuilderFlag, DeviceType, MemoryPoolType, ProfilingVerbosity,
                LayerInformationFormat, TensorIOMode, DataType, nptype, Builder, OnnxParser, Runtime,
                IInt8EntropyCalibrator2):
        setattr(trt, obj.__name__, obj)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
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
