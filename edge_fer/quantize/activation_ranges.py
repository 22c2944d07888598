"""Activation ranges from streaming histograms: minmax, entropy (KL) and percentile calibration for ONNX Runtime.

Why edge-fer computes these ranges itself instead of using ORT's histogram calibrators:

* memory: ORT keeps every intermediate tensor of every calibration image until the end (about 36 MiB
  per image at 224 px, so 14 GiB for 400 images).  Here each batch is folded into a fixed-size
  histogram per tensor and dropped.
* entropy: called through ``quantize_static``, ORT's entropy search runs on a 128-bin histogram with
  128 quantized bins.  That leaves one candidate threshold, the full range, so it returns min/max.
  Its Python loops would take minutes at the usual 2048 bins.  This module searches the thresholds
  of a 2048-bin histogram with prefix sums (TensorRT's KL method), in seconds.
* percentile: ORT makes the range symmetric, which wastes half of a uint8 activation's levels on
  a ReLU output that is never negative.  Here the clip is applied to the observed [min, max].

The ranges reach ``quantize_static`` through its public ``calibration_cache_path``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

BINS = 2048
# Elements of one tensor per batch that enter its histogram: collection then costs about what
# inference does (13 s instead of 32 s for 408 images at 224 px).  Measured against all values on
# the reference model: percentile clips within 1% (p90 0.5%); KL clips move more (p90 15%: the
# KL objective is flat near its minimum), with the same FER+ test accuracy (70.15%) and top-1
# agreement 93.13% sampled vs 93.55% from all values.
SAMPLES_PER_BATCH = 1 << 18
# ``--percentile``'s default, for every target (NNCF: mean-quantile with outlier probability 1e-5), chosen on FER+
# val with the shipped model (benchmarks/results/*-percentile.md): 99.99 clipped activations the int8 model
# then missed (mean |dlogit| vs float 0.121 -> 0.075 on cpu at 99.999).
PERCENTILE = 99.999
# The KL clip never removes more of a tensor than this percentile leaves out (0.1%).  On this
# project's reference model the unbounded KL search cut 6.6% of the pooled embedding and 4% of
# the logits (skewed, offset distributions), and top-1 agreement with float fell to 92.6%;
# bounded, 94.5% (FER+ test, 1200 images), against 93.8% for min/max.
ENTROPY_FLOOR_PERCENTILE = 99.9
CANDIDATE_STEP = 8  # KL thresholds tried every 8 bins (0.4% of the range)


def strided_sample(x: np.ndarray, cap: int = SAMPLES_PER_BATCH) -> np.ndarray:
    """At most ``cap`` evenly spaced values of ``x``.

    The stride is coprime with one sample's size (C*H*W), so successive picks walk through
    every channel, row and column instead of locking onto one of them.
    """
    flat = x.reshape(-1)
    if flat.size <= cap:
        return flat
    step = -(-flat.size // cap)
    inner = int(np.prod(x.shape[1:])) if x.ndim > 1 else 1
    while math.gcd(step, inner) != 1:
        step += 1
    return flat[::step]


@dataclass
class AbsHistogram:
    """Histogram of the non-zero |x| over [0, top) in :data:`BINS` bins, the exact zeros, and the signed extremes.

    When a batch exceeds ``top``, ``top`` doubles and bin pairs merge, so the counts are
    exactly those of all values seen so far on the current bins (no re-binning estimate).  Exact zeros (half
    of a ReLU output) are counted apart: every quantizer represents 0 exactly, and left in
    bin 0 their spike would pull the KL search towards tiny clips.
    """

    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    zeros: int = 0
    top: float = 0.0
    lowest: float = math.inf
    highest: float = -math.inf

    def add(self, x: np.ndarray) -> None:
        sample = strided_sample(x)
        if sample.size == 0:
            return
        lo, hi = float(x.min()), float(x.max())  # exact extremes (minmax), not the sample's
        self.lowest, self.highest = min(self.lowest, lo), max(self.highest, hi)
        amax = max(-lo, hi)
        zeros = sample.size - int(np.count_nonzero(sample))
        self.zeros += zeros
        if amax == 0.0:
            return
        if self.top == 0.0:
            self.top = amax * (1 + 1 / BINS)  # the largest value falls inside the last bin, not on its edge
        while amax >= self.top:
            self.counts = np.concatenate([self.counts.reshape(-1, 2).sum(1), np.zeros(BINS // 2, np.int64)])
            self.top *= 2.0
        idx = (np.abs(sample) * (BINS / self.top)).astype(np.int64)
        np.minimum(idx, BINS - 1, out=idx)
        self.counts += np.bincount(idx, minlength=BINS)
        self.counts[0] -= zeros

    def edge(self, bins: int) -> float:
        """|x| at the upper edge of the first ``bins`` bins."""
        return self.top * bins / BINS


def percentile_top(hist: AbsHistogram, percentile: float = PERCENTILE) -> float:
    """Smallest bin edge below which ``percentile`` % of |x| (zeros included) falls."""
    cum = np.cumsum(hist.counts) + hist.zeros
    if cum[-1] == 0:
        return 0.0
    return hist.edge(int(np.searchsorted(cum, cum[-1] * percentile / 100.0)) + 1)


def _distribution(counts: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """``counts`` normalised, with empty bins raised to ``eps`` so the KL divergence stays finite."""
    dist = counts / counts.sum()
    dist = np.where(dist == 0, eps, dist)
    return dist / dist.sum()


def entropy_top(hist: AbsHistogram, levels: int) -> float:
    """|x| clip that minimises KL(float || quantized to ``levels`` steps) (TensorRT's entropy calibration).

    For a threshold of ``i`` bins the reference keeps the clipped mass in its last bin; the
    candidate spreads each of ``levels`` groups' mass evenly over the group's non-empty bins.
    Group sums and non-empty counts come from prefix sums, so each candidate costs O(i).
    """
    counts = hist.counts.astype(np.float64)
    filled = np.flatnonzero(counts)
    if filled.size == 0:
        return 0.0
    last = int(filled[-1]) + 1
    if last <= levels:  # every value already has its own level: nothing to clip
        return hist.edge(last)
    total = np.concatenate([[0.0], np.cumsum(counts)])
    nonzero = counts > 0
    n_nonzero = np.concatenate([[0], np.cumsum(nonzero)])
    best, best_kl = last, math.inf
    for i in sorted({*range(levels, last, CANDIDATE_STEP), last}):
        p = counts[:i].copy()
        p[-1] += total[-1] - total[i]
        edges = (np.arange(levels + 1) * i) // levels
        mass = total[edges[1:]] - total[edges[:-1]]
        spread = mass / np.maximum(n_nonzero[edges[1:]] - n_nonzero[edges[:-1]], 1)
        q = np.where(nonzero[:i], np.repeat(spread, np.diff(edges)), 0.0)
        if q.sum() == 0:  # everything below this threshold is empty: all mass would be clipped
            continue
        p, q = _distribution(p), _distribution(q)
        kl = float(np.sum(p * np.log(p / q)))
        if kl < best_kl:
            best, best_kl = i, kl
    return hist.edge(best)


def clip_range(hist: AbsHistogram, method: str, symmetric: bool, percentile: float = PERCENTILE
               ) -> tuple[float, float]:
    """(low, high) for one tensor: the |x| clip of ``method`` intersected with the observed values.

    ``levels`` for the KL search: 255 for a never-negative tensor in asymmetric uint8, 127 per side otherwise.
    """
    if method == "entropy":
        top = max(entropy_top(hist, 127 if symmetric or hist.lowest < 0 else 255),
                  percentile_top(hist, ENTROPY_FLOOR_PERCENTILE))
    elif method == "percentile":
        top = percentile_top(hist, percentile)
    elif method == "minmax":
        return hist.lowest, hist.highest
    else:
        raise ValueError(f"no histogram range for method {method!r}")
    return max(hist.lowest, -top), min(hist.highest, top)


def float_tensors(model: onnx.ModelProto) -> list[str]:
    """Every float32 tensor the graph computes or takes in (the quantizer picks the ones it needs)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    inits = {i.name for i in inferred.graph.initializer}
    names = [v.name for v in infos if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and v.name not in inits]
    return list(dict.fromkeys(names))


def collect(float_path: Path, batches: Sequence[np.ndarray],
            progress: Callable[[int, int], None] = lambda _done, _total: None) -> dict[str, AbsHistogram]:
    """Histograms of every float tensor of ``float_path`` over ``batches``, one batch in memory at a time."""
    import onnxruntime as ort

    model = onnx.load(str(float_path))
    names = float_tensors(model)
    outputs = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in outputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # every tensor as in the graph
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = set(names)
    fetch = [o.name for o in session.get_outputs() if o.name in wanted]
    input_name = model.graph.input[0].name
    hists = {n: AbsHistogram() for n in fetch}
    for k, batch in enumerate(batches):
        for name, value in zip(fetch, session.run(fetch, {input_name: batch}), strict=True):
            hists[name].add(value)
        progress(k + 1, len(batches))
    return hists


def write_calibration_cache(path: Path, hists: dict[str, AbsHistogram], method: str, symmetric: bool,
                            percentile: float = PERCENTILE) -> None:
    """ORT's calibration cache (``quantize_static(calibration_cache_path=...)``) holding each tensor's clip."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData, save_tensors_data

    kind = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
            "minmax": CalibrationMethod.MinMax}[method]
    data = {}
    for name, hist in hists.items():
        lo, hi = clip_range(hist, method, symmetric, percentile)
        data[name] = TensorData(lowest=np.float32(lo), highest=np.float32(hi))
    save_tensors_data(TensorsData(kind, data), path)
