"""What one quantization may choose and what each target defaults to: target, calibration method,
``--percentile`` and ``--depthwise``, checked before any image loads; every default was measured on FER+ val."""

from __future__ import annotations

from pathlib import Path

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.quantize import activation_ranges

TARGETS = ("cpu", "jetson", "intel")
METHODS = ("minmax", "entropy", "percentile")
# Measured on FER+ test with the reference model (benchmarks/results/*-calibration.md): entropy
# loses 0.49 pt on cpu where minmax loses 1.61 pt (same 93.1% agreement, 26 s instead of 19 s), and
# 1.93 pt on jetson where minmax loses 6.00.  TensorRT's own calibrator is entropy too.  NNCF has no
# KL search.  With the v1 model (224 px) its minmax beat mean-quantile (94.6% vs 93.3% agreement, 27 s vs
# 89 s); with the v2 model (64 px, BN neck, 2026-12-01, Intel Xeon with AVX-512 VNNI) minmax agreed on
# only 82.4% of the held-out calibration images (77.6% of FER+ test) and percentile on 98.0% in 10 s.
# jetson, chosen on FER+ val with the conv-input placement (benchmarks/results/*-jetson_placement.md): on the
# shipped model percentile agrees with float on 98.44%, entropy on 98.05%, minmax on 96.80% (on the model
# before it: entropy 97.71%, percentile 97.60%).
# cpu, chosen on FER+ val with the mirror-averaging default (benchmarks/results/*-calibration_size.md): percentile
# agrees with float on 99.10% of val with 512 images (entropy 98.44%), and beats entropy at 1024 and 2048 too.
DEFAULT_METHOD = {"cpu": "percentile", "jetson": "percentile", "intel": "percentile"}
# --depthwise, chosen on FER+ val with the shipped model (benchmarks/results/*-depthwise.md; the reasons and
# figures in exclude.DEPTHWISE_REASON).  Float depthwise convs cost latency where int8 runs them faster.
DEPTHWISE_DEFAULT = {"cpu": "int8", "jetson": "float", "intel": "float"}
DEPTHWISE = ("int8", "float")


def depthwise_choice(target: str, depthwise: str | None) -> str:
    """``--depthwise``, or the target's default (:data:`DEPTHWISE_DEFAULT`); anything else -> error."""
    depthwise = depthwise or DEPTHWISE_DEFAULT[target]
    if depthwise not in DEPTHWISE:
        raise EdgeFerError(f"--depthwise {depthwise!r}: use one of {', '.join(DEPTHWISE)}")
    return depthwise


def percentile_choice(method: str, percentile: float | None) -> float:
    """``--percentile`` (only with ``--method percentile``), or :data:`activation_ranges.PERCENTILE`."""
    if percentile is None:
        return activation_ranges.PERCENTILE
    if method != "percentile":
        raise EdgeFerError(f"--percentile {percentile:g}: it sets --method percentile's clip, not {method}'s; "
                           "drop it or add --method percentile")
    if not 50.0 < percentile <= 100.0:
        raise EdgeFerError(f"--percentile {percentile:g}: give the share of |x| to keep, above 50 and up to 100 "
                           f"(default {activation_ranges.PERCENTILE:g})")
    return percentile


def check_choices(target: str, method: str | None, budget: bool, val: str | Path | None) -> str:
    """The target and method checked (``method`` None: the target's default), a budget only with ``val``;
    returns the method."""
    if target not in TARGETS:
        raise EdgeFerError(f"--target {target!r}: use one of {', '.join(TARGETS)}")
    method = method or DEFAULT_METHOD[target]
    if method not in METHODS:
        raise EdgeFerError(f"--method {method!r}: use one of {', '.join(METHODS)}")
    if budget != (val is not None):
        raise EdgeFerError("--max-drop/--min-agreement and --val go together: the budget is measured on labelled "
                           "--val images")
    return method
