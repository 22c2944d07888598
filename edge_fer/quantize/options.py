"""What one ``edge-fer quantize`` is asked to do besides its inputs (the model, the output and the calibration
images): one record that the CLI, build and bench fill the same way; and the :class:`Recipe` it resolves to,
which the ONNX Runtime and NNCF steps both read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_fer.quantize.activation_ranges import PERCENTILE

if TYPE_CHECKING:
    from edge_fer.quantize.qat import QatOptions


@dataclass(frozen=True)
class QuantizeOptions:
    """The options of :func:`edge_fer.quantize.run.quantize` (field names are the CLI flags')."""

    target: str = "cpu"
    method: str | None = None  # None: the target's measured best (choices.DEFAULT_METHOD)
    per_channel: bool = True
    exclude: Sequence[str] = ()  # node names or op types kept float
    classes: str | None = None  # for a model without edge-fer metadata
    img_size: int | None = None
    max_drop: float | None = None  # accuracy budget, points, measured on val
    val: str | Path | None = None  # labelled folder for max_drop / min_agreement
    reduce_range: bool | None = None  # None: 7- or 8-bit weights from this host's CPU (run.weight_range)
    qat: QatOptions | None = None
    min_agreement: float | None = None  # with qat: percent top-1 agreement PTQ must reach on val
    depthwise: str | None = None  # "int8" | "float"; None: the target's measured choice (choices.DEPTHWISE_DEFAULT)
    percentile: float | None = None  # with method percentile; None: activation_ranges.PERCENTILE


@dataclass(frozen=True)
class Recipe:
    """The quantization choices one run resolves (target, method, weight scheme): ONNX Runtime's and NNCF's
    settings are made from it, and every retry of ``--max-drop`` reuses it."""

    target: str
    method: str
    per_channel: bool
    reduce_range: bool  # 7-bit weights: no int16 overflow in u8 x s8 products on CPUs without VNNI
    depthwise_float: bool = False  # depthwise convolutions kept float (jetson and intel by default)
    percentile: float = PERCENTILE  # method percentile: the percentile of |x| each activation's range keeps
