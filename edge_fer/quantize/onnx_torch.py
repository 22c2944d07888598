"""Run an exported (float or QDQ) ONNX graph as a PyTorch module, so it can be fine-tuned.

Quantization-aware training has to train *the graph the runtime executes*: the same
Q/DQ placement, the same scales, the same float islands.  Rebuilding that from the
PyTorch model would mean re-deriving every quantizer's placement rules (ONNX Runtime's,
NNCF's, TensorRT's) by hand; interpreting the quantized graph itself gets them for free.

Each ``QuantizeLinear`` runs as a fake quantizer with a straight-through gradient
(round half to even, clamp to the integer type's range, as ONNX specifies); each
``DequantizeLinear`` as ``(q - zero_point) * scale``.  Convolution weights and biases
become trainable parameters:

* a float weight (a Conv left float, or TensorRT's float-weight -> Q -> DQ pattern)
  trains as it is;
* an integer weight feeding a DequantizeLinear (ONNX Runtime's and NNCF's int8
  initialisers, int32 biases) trains as its dequantized float value and is quantized
  again on every forward pass with the graph's own scale, zero point and the
  quantizer's integer range, so :meth:`OnnxModule.to_onnx` writes back exactly the
  integers the forward pass used.  That range is read off the weights themselves:
  symmetric weight quantizers map each channel's largest weight to the range's end
  (127; 64 for ONNX Runtime's 7-bit ``reduce_range``), so the largest magnitude in
  the tensor is the quantizer's limit.

Scales stay those of post-training calibration: what changes is only the weights.
Only the operator set of edge-fer's exported graphs is implemented; anything else is a
clear error naming the operator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, numpy_helper
from torch import nn

from edge_fer.artifacts.errors import EdgeFerError

INT_RANGES = {TensorProto.UINT8: (0, 255), TensorProto.INT8: (-128, 127),
              TensorProto.INT32: (-(2 ** 31), 2 ** 31 - 1)}
NUMPY_INT = {TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8, TensorProto.INT32: np.int32}


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _per_axis(t: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    """A per-channel scale/zero point shaped to broadcast along ``axis`` of ``like``."""
    if t.dim() == 0 or t.numel() == 1:
        return t.reshape(())
    shape = [1] * like.dim()
    shape[axis % like.dim()] = -1
    return t.reshape(shape)


def fake_round(x: torch.Tensor) -> torch.Tensor:
    """Round half to even (ONNX QuantizeLinear's rounding) with a straight-through gradient."""
    return x + (torch.round(x) - x).detach()


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int,
             qmin: int, qmax: int) -> torch.Tensor:
    """ONNX QuantizeLinear in float: integer values, clamped (no gradient outside the range)."""
    s, z = _per_axis(scale, x, axis), _per_axis(zero_point, x, axis)
    return torch.clamp(fake_round(x / s) + z, qmin, qmax)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int) -> torch.Tensor:
    return (q - _per_axis(zero_point, q, axis)) * _per_axis(scale, q, axis)


def _conv(x, w, b=None, **attrs):
    pads, group = attrs.get("pads", (0, 0, 0, 0)), attrs.get("group", 1)
    strides, dilations = attrs.get("strides", (1, 1)), attrs.get("dilations", (1, 1))
    half = len(pads) // 2
    if list(pads[:half]) != list(pads[half:]):  # asymmetric padding: pad explicitly (left/right per axis)
        x = F.pad(x, [p for i in reversed(range(half)) for p in (pads[i], pads[i + half])])
        pads = [0] * len(pads)
    return F.conv2d(x, w, b, stride=tuple(strides), padding=tuple(pads[:half]), dilation=tuple(dilations),
                    groups=group)


def _reduce(fn: Callable) -> Callable:
    def run(x, axes_input=None, *, axes=None, keepdims=1, **_):
        dims = axes if axes is not None else (axes_input.tolist() if axes_input is not None else list(range(x.dim())))
        return fn(x, dims, bool(keepdims))
    return run


def _clip(x, lo=None, hi=None, **_):
    return torch.clamp(x, min=lo, max=hi)


def _slice(x, starts, ends, axes=None, steps=None, **_):
    """ONNX Slice, negative steps included (a mirror image is ``Slice(step=-1)``): a Python ``range``
    slice clamps out-of-range bounds the way ONNX does."""
    axes = axes.tolist() if axes is not None else list(range(len(starts)))
    steps = steps.tolist() if steps is not None else [1] * len(starts)
    for start, end, axis, step in zip(starts.tolist(), ends.tolist(), axes, steps, strict=True):
        index = range(x.shape[axis])[slice(start, end, step)]
        x = x.index_select(axis, torch.tensor(index, dtype=torch.int64, device=x.device))
    return x


def _gemm(a, b, c=None, **attrs):
    a = a.transpose(-1, -2) if attrs.get("transA", 0) else a
    b = b.transpose(-1, -2) if attrs.get("transB", 0) else b
    out = attrs.get("alpha", 1.0) * (a @ b)
    return out + attrs.get("beta", 1.0) * c if c is not None else out


OPS: dict[str, Callable] = {
    "Conv": _conv,
    "Relu": lambda x, **_: F.relu(x),
    "Sigmoid": lambda x, **_: torch.sigmoid(x),
    "Add": lambda a, b, **_: a + b,
    "Sub": lambda a, b, **_: a - b,
    "Mul": lambda a, b, **_: a * b,
    "Div": lambda a, b, **_: a / b,
    "MatMul": lambda a, b, **_: a @ b,
    "Gemm": _gemm,
    "ReduceMean": _reduce(lambda x, d, k: x.mean(dim=d, keepdim=k)),
    "ReduceMax": _reduce(lambda x, d, k: x.amax(dim=d, keepdim=k)),
    "ReduceL2": _reduce(lambda x, d, k: torch.linalg.vector_norm(x, dim=d, keepdim=k)),
    "GlobalAveragePool": lambda x, **_: x.mean(dim=(2, 3), keepdim=True),
    "Concat": lambda *xs, axis=0, **_: torch.cat(xs, dim=axis),
    "Clip": _clip,
    "Shape": lambda x, **_: torch.tensor(x.shape, dtype=torch.int64),
    "Expand": lambda x, shape, **_: x.expand(torch.broadcast_shapes(x.shape, tuple(shape.tolist()))),
    "Transpose": lambda x, *, perm, **_: x.permute(*perm),
    "Reshape": lambda x, shape, **_: x.reshape(*shape.tolist()),
    "Slice": _slice,
    "Flatten": lambda x, *, axis=1, **_: x.flatten(axis),
    "Identity": lambda x, **_: x,
}


class OnnxModule(nn.Module):
    """An ONNX graph (edge-fer's operator set, Q/DQ included) as a trainable PyTorch module."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        super().__init__()
        self.proto = proto
        self.nodes = list(proto.graph.node)
        unknown = sorted({n.op_type for n in self.nodes} - set(OPS) - {"Constant", "QuantizeLinear",
                                                                       "DequantizeLinear"})
        if unknown:
            raise EdgeFerError(f"QAT cannot run operators {', '.join(unknown)} (edge-fer runs the ops of its own "
                               "exported graphs); quantize without --qat")
        self.input_name = proto.graph.input[0].name
        self.output_name = proto.graph.output[0].name
        init = {t.name: t for t in proto.graph.initializer}
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for i in node.input:
                consumers.setdefault(i, []).append(node)
        trainable = self._trainable(init, consumers)
        self.params = nn.ParameterDict()
        self.key = {name: f"p{i}" for i, name in enumerate(sorted(trainable))}
        self.requant: dict[str, tuple[str, str, int, int, int]] = {}  # int initializer -> its DQ's scale, zp, ...
        self.consts: dict[str, torch.Tensor] = {}
        for name, tensor in init.items():
            value = numpy_helper.to_array(tensor)
            if name not in trainable:
                self.consts[name] = torch.from_numpy(np.array(value))
                continue
            if tensor.data_type in NUMPY_INT:  # int weight/bias: train its dequantized value
                dq = next(n for n in consumers[name] if n.op_type == "DequantizeLinear")
                scale, zp = numpy_helper.to_array(init[dq.input[1]]), numpy_helper.to_array(init[dq.input[2]])
                axis = _attrs(dq).get("axis", 1)
                lo, hi = INT_RANGES[tensor.data_type]
                if tensor.data_type == TensorProto.INT8:  # the symmetric quantizer's limit (see the module doc)
                    lo, hi = -int(np.abs(value.astype(np.int32)).max()), int(np.abs(value.astype(np.int32)).max())
                self.requant[name] = (dq.input[1], dq.input[2], axis, lo, hi)
                shaped = value.astype(np.float32)
                if scale.size > 1:
                    shape = [1] * value.ndim
                    shape[axis] = -1
                    scale, zp = scale.reshape(shape), zp.reshape(shape)
                value = (shaped - zp.astype(np.float32)) * scale.astype(np.float32)
            self.params[self.key[name]] = nn.Parameter(torch.from_numpy(np.array(value, dtype=np.float32)))
        for node in self.nodes:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = torch.from_numpy(np.array(numpy_helper.to_array(node.attribute[0].t)))
        self.zp_type = {t.name: t.data_type for t in proto.graph.initializer}

    @staticmethod
    def _trainable(init: dict[str, onnx.TensorProto], consumers: dict[str, list[onnx.NodeProto]]) -> set[str]:
        """Initialisers that are a Conv's weight or bias, directly or through their own Q and/or DQ."""
        out = set()
        for name in init:
            reach, frontier = [name], [name]
            for _ in range(2):  # weight -> Q -> DQ -> Conv at most
                frontier = [o for f in frontier for n in consumers.get(f, [])
                            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] == f
                            for o in n.output]
                reach += frontier
            if any(n.op_type == "Conv" and r in n.input[1:] for r in reach for n in consumers.get(r, [])):
                out.add(name)
        return out

    def _value(self, name: str, env: dict[str, torch.Tensor]) -> torch.Tensor:
        if name in env:
            return env[name]
        if name in self.key:
            value = self.params[self.key[name]]
            if name in self.requant:
                scale, zp, axis, lo, hi = self.requant[name]
                value = quantize(value, self.consts[scale].float(), self.consts[zp].float(), axis, lo, hi)
            return value
        return self.consts[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {self.input_name: x}
        for node in self.nodes:
            if node.op_type == "Constant":
                continue
            args = [self._value(i, env) if i else None for i in node.input]
            attrs = _attrs(node)
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                zp = args[2].float() if len(args) > 2 and args[2] is not None else torch.zeros(())
                if node.op_type == "QuantizeLinear":
                    lo, hi = INT_RANGES[self._zero_point_type(node)]
                    out = quantize(args[0], args[1].float(), zp, attrs.get("axis", 1), lo, hi)
                else:
                    out = dequantize(args[0].float(), args[1].float(), zp, attrs.get("axis", 1))
            else:
                out = OPS[node.op_type](*args, **attrs)
            env[node.output[0]] = out
        return env[self.output_name]

    def _zero_point_type(self, node: onnx.NodeProto) -> int:
        if len(node.input) > 2 and node.input[2]:
            return self.zp_type[node.input[2]]
        return TensorProto.UINT8  # ONNX's default without a zero point

    def to_onnx(self) -> onnx.ModelProto:
        """The source graph with the trained weights: floats as floats, integers re-quantized as in forward."""
        proto = copy.deepcopy(self.proto)
        with torch.no_grad():
            for tensor in proto.graph.initializer:
                if tensor.name not in self.key:
                    continue
                value = self._value(tensor.name, {}).detach().cpu().numpy()
                if tensor.data_type in NUMPY_INT:
                    value = np.rint(value).astype(NUMPY_INT[tensor.data_type])
                tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
        return proto
