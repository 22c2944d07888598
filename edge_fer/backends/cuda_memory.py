"""GPU buffers and streams for TensorRT: pycuda where installed, else NVIDIA's cuda-python.

TensorRT itself only takes device addresses and a stream handle; something else
must allocate memory and copy.  pycuda is the design's choice, but it needs CUDA
headers to build, and newer JetPack images ship ``cuda-python`` instead, so both
sit behind one small interface (:class:`CudaMemory`).  Both are imported lazily.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge_fer.artifacts.errors import EdgeFerError


class CudaMemory(Protocol):
    """What the TensorRT runner and the INT8 calibrator need from a CUDA binding."""

    name: str

    def facts(self) -> dict[str, str]: ...
    def host_empty(self, shape: tuple[int, ...], dtype) -> np.ndarray: ...
    def alloc(self, nbytes: int) -> int: ...
    def stream(self) -> object: ...
    def handle(self, stream: object) -> int: ...
    def copy_in(self, device: int, host: np.ndarray) -> None: ...
    def copy_in_async(self, device: int, host: np.ndarray, stream: object) -> None: ...
    def copy_out_async(self, host: np.ndarray, device: int, stream: object) -> None: ...
    def sync(self, stream: object) -> None: ...


class PyCudaMemory:
    """pycuda: page-locked host buffers, ``pycuda.autoinit``'s context on GPU 0."""

    name = "pycuda"

    def __init__(self, driver) -> None:
        self.cuda = driver
        self._keep: list[object] = []  # DeviceAllocation frees its memory when collected

    def facts(self) -> dict[str, str]:
        device = self.cuda.Device(0)
        major, minor = device.compute_capability()
        return {"gpu": str(device.name()), "compute_capability": f"{major}.{minor}"}

    def host_empty(self, shape, dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(shape, dtype)

    def alloc(self, nbytes: int) -> int:
        allocation = self.cuda.mem_alloc(nbytes)
        self._keep.append(allocation)
        return int(allocation)

    def stream(self):
        return self.cuda.Stream()

    def handle(self, stream) -> int:
        return stream.handle

    def copy_in(self, device: int, host: np.ndarray) -> None:
        self.cuda.memcpy_htod(device, host)

    def copy_in_async(self, device: int, host: np.ndarray, stream) -> None:
        self.cuda.memcpy_htod_async(device, host, stream)

    def copy_out_async(self, host: np.ndarray, device: int, stream) -> None:
        self.cuda.memcpy_dtoh_async(host, device, stream)

    def sync(self, stream) -> None:
        stream.synchronize()


class CudaPythonMemory:
    """cuda-python's runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6).

    Every call returns ``(error, *results)``; a non-success error becomes one
    EdgeFerError line.  Host buffers come from ``cudaMallocHost`` (page-locked,
    like pycuda's) viewed as numpy arrays.
    """

    name = "cuda-python"

    def __init__(self, runtime) -> None:
        self.rt = runtime

    def _ok(self, result):
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            raise EdgeFerError(f"CUDA runtime error {err} (cuda-python); check the GPU with nvidia-smi/tegrastats")
        return values[0] if len(values) == 1 else values

    def facts(self) -> dict[str, str]:
        props = self._ok(self.rt.cudaGetDeviceProperties(0))
        name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
        return {"gpu": name, "compute_capability": f"{props.major}.{props.minor}"}

    def host_empty(self, shape, dtype) -> np.ndarray:
        import ctypes

        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        pointer = int(self._ok(self.rt.cudaMallocHost(nbytes)))
        raw = (ctypes.c_ubyte * nbytes).from_address(pointer)
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def alloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(nbytes)))

    def stream(self):
        return self._ok(self.rt.cudaStreamCreate())

    def handle(self, stream) -> int:
        return int(stream)

    def copy_in(self, device: int, host: np.ndarray) -> None:
        host = np.ascontiguousarray(host)
        self._ok(self.rt.cudaMemcpy(device, host.ctypes.data, host.nbytes,
                                    self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice))

    def copy_in_async(self, device: int, host: np.ndarray, stream) -> None:
        self._ok(self.rt.cudaMemcpyAsync(device, host.ctypes.data, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))

    def copy_out_async(self, host: np.ndarray, device: int, stream) -> None:
        self._ok(self.rt.cudaMemcpyAsync(host.ctypes.data, device, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))

    def sync(self, stream) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream))


def open_cuda() -> CudaMemory:
    """pycuda (with a current context on GPU 0), else cuda-python, else one line saying what to install."""
    try:
        import pycuda.autoinit  # noqa: F401  (creates and activates a context on GPU 0)
        import pycuda.driver as driver
        return PyCudaMemory(driver)
    except ImportError:
        pass
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python < 12.6
        except ImportError:
            raise EdgeFerError("neither pycuda nor cuda-python is installed: pip install 'edge-fer[jetson]' (pycuda) "
                               "or pip install cuda-python on the Jetson; edge-fer allocates TensorRT's buffers "
                               "with one of them") from None
    return CudaPythonMemory(runtime)
