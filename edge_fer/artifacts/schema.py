"""One schema for the metadata of checkpoints (``model.json``) and artifacts (ONNX/IR/engine metadata).

Metadata is read from files a user may have been handed, so every value is checked
(type, range, allowed words) before anything is built from it: a 4 KB ``model.json``
saying ``"width": 40`` must fail in milliseconds, not after building a 15 GB network.
Architecture fields are checked generically against :class:`FERNetConfig`'s own
defaults (a new optional field with a default is type-checked without edits here);
:data:`CHOICES` and :data:`LIMITS` add the words and ranges of the ones that have them.
Every check raises :class:`SchemaError` naming the field; callers add the file.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from edge_fer.data.preprocessing import INTERPOLATIONS, Preprocessing

if TYPE_CHECKING:  # the model module imports torch: only checkpoints need it, artifacts must not pay for it
    from edge_fer.model.fernet import FERNetConfig

MAX_METADATA_BYTES = 16 << 20  # a model.json or metadata string larger than this is not edge-fer's
MAX_PARAMETERS = 200_000_000  # FERNet at width 1.0 has ~3.5 M; refuse before allocating anything bigger
IMG_SIZE = (32, 1024)  # five stride-2 stages need >= 32 px; above 1024 px one image's activations reach GBs
CHOICES: dict[str, tuple[str, ...]] = {
    "attention": ("cbam", "se", "none"),
    "head": ("cosine", "linear"),
    "neck": ("none", "bn"),
}
# (low, high) inclusive; floats must also be finite
LIMITS: dict[str, tuple[float, float]] = {
    "num_classes": (2, 1000),
    "img_size": IMG_SIZE,
    "width": (1e-3, 4.0),
    "reduction": (1, 1024),
    "head_scale": (1e-3, 1000.0),
    "stem_channels": (1, 4096),
}
STACK_LAYERS = (1, 32)
STACK_CHANNELS = (1, 8192)


class SchemaError(ValueError):
    """A metadata value that is missing, of the wrong type or out of range; the message names the field."""


def _number(value: object, name: str, kind: type, limits: tuple[float, float] | None) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise SchemaError(f"{name}: {value!r} is not {'an integer' if kind is int else 'a number'}")
    if not math.isfinite(value):
        raise SchemaError(f"{name}: {value!r} is not finite")
    if limits is not None and not limits[0] <= value <= limits[1]:
        raise SchemaError(f"{name}: {value!r} is outside {limits[0]:g}..{limits[1]:g}")
    return value


def _word(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{name}: {value!r} is not a string")
    if name.rpartition(".")[2] in CHOICES and value not in CHOICES[name.rpartition(".")[2]]:
        raise SchemaError(f"{name}: {value!r} is not one of {', '.join(CHOICES[name.rpartition('.')[2]])}")
    return value


def _stack(value: object, name: str) -> tuple[tuple[int, int, bool], ...]:
    if not isinstance(value, list | tuple) or not STACK_LAYERS[0] <= len(value) <= STACK_LAYERS[1]:
        raise SchemaError(f"{name}: expected a list of {STACK_LAYERS[0]}..{STACK_LAYERS[1]} [stride, channels, "
                          "attention] rows")
    rows = []
    for i, row in enumerate(value):
        if not isinstance(row, list | tuple) or len(row) != 3:
            raise SchemaError(f"{name}[{i}]: expected [stride, channels, attention]")
        stride = _number(row[0], f"{name}[{i}].stride", int, (1, 2))
        channels = _number(row[1], f"{name}[{i}].channels", int, STACK_CHANNELS)
        if not isinstance(row[2], bool):
            raise SchemaError(f"{name}[{i}].attention: {row[2]!r} is not true/false")
        rows.append((int(stride), int(channels), row[2]))
    return tuple(rows)


def _mapping(data: object, name: str) -> Mapping:
    if not isinstance(data, Mapping):
        raise SchemaError(f"{name}: expected an object, got {type(data).__name__}")
    return data


def architecture(data: object) -> FERNetConfig:
    """A checked :class:`FERNetConfig`: every field typed like its default, in range, words from :data:`CHOICES`."""
    from edge_fer.model.fernet import FERNetConfig

    data = _mapping(data, "architecture")
    fields = {f.name: f for f in dataclasses.fields(FERNetConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SchemaError(f"architecture: unknown fields {unknown} (written by a newer edge-fer?)")
    values: dict = {}
    for key, value in data.items():
        name = f"architecture.{key}"
        default = fields[key].default
        if default is dataclasses.MISSING and fields[key].default_factory is not dataclasses.MISSING:
            default = fields[key].default_factory()
        if key == "stack":
            values[key] = _stack(value, name)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise SchemaError(f"{name}: {value!r} is not true/false")
            values[key] = value
        elif isinstance(default, int | float):
            values[key] = _number(value, name, type(default), LIMITS.get(key))
        elif isinstance(default, str):
            values[key] = _word(value, name)
        else:
            raise SchemaError(f"{name}: this edge-fer cannot check a {type(default).__name__} field")
    return FERNetConfig(**values)


def preprocessing(data: object) -> Preprocessing:
    """Checked :class:`Preprocessing` (``std`` > 0: a zero would silently turn every input into inf)."""
    data = _mapping(data, "preprocessing")
    known = {f.name for f in dataclasses.fields(Preprocessing)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SchemaError(f"preprocessing: unknown fields {unknown}")
    values = dict(data)
    if "img_size" in values:
        _number(values["img_size"], "preprocessing.img_size", int, IMG_SIZE)
    if "mean" in values:
        _number(values["mean"], "preprocessing.mean", float, (-10.0, 10.0))
    if "std" in values:
        _number(values["std"], "preprocessing.std", float, (1e-6, 1e6))
    if "interpolation" in values:
        value = values["interpolation"]
        if value not in INTERPOLATIONS:
            raise SchemaError(f"preprocessing.interpolation: {value!r} is not one of {', '.join(INTERPOLATIONS)}")
    return Preprocessing(**values)


def classes(data: object) -> list[str]:
    """2..1000 distinct, non-empty, printable class names."""
    low, high = LIMITS["num_classes"]
    if not isinstance(data, list) or not low <= len(data) <= high:
        raise SchemaError(f"classes: expected a list of {low:g}..{high:g} names")
    for name in data:
        if not isinstance(name, str) or not name.strip() or len(name) > 100 or not name.isprintable():
            raise SchemaError(f"classes: {name!r} is not a usable class name (non-empty printable text)")
    if len(set(data)) != len(data):
        raise SchemaError(f"classes: {sorted({n for n in data if data.count(n) > 1})} listed twice")
    return list(data)


def extra(meta: Mapping) -> None:
    """The informational parts commands print (``metrics``, ``training``): numbers must be numbers."""
    metrics = _mapping(meta.get("metrics", {}), "metrics")
    for split, m in metrics.items():
        if split == "best_epoch":  # the epoch val chose (0: recalibrated, not yet trained)
            _number(m, "metrics.best_epoch", int, (0, 1e9))
            continue
        m = _mapping(m, f"metrics.{split}")
        for key in ("accuracy", "macro_recall"):
            if key in m:
                _number(m[key], f"metrics.{split}.{key}", float, (0.0, 1.0))
        if "n" in m:
            _number(m["n"], f"metrics.{split}.n", int, (0, 1e12))
    training = _mapping(meta.get("training", {}), "training")
    if "wall_time_s" in training:
        _number(training["wall_time_s"], "training.wall_time_s", float, (0.0, 1e12))
    if "command" in training and not isinstance(training["command"], str):
        raise SchemaError("training.command: not a string")
    _mapping(training.get("machine", {}), "training.machine")

