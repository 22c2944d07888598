"""The bench's artifact cache: each (backend, precision) built once, reused while its record vouches for it.

Artifacts are cached under ``CACHE/<sha256 of the checkpoint's weights and metadata>[:16]/``:
a changed checkpoint (weights or ``model.json``) gets a new folder, so a stale artifact
is never benchmarked.  Each entry has a record (``NAME.cache.json``: that key, and the
size and sha256 of every file) checked on reuse; a truncated or replaced entry is
rebuilt, never blamed on the user.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_fer.artifacts.atomic import write_json
from edge_fer.artifacts.checkpoint import Checkpoint, sha256_file
from edge_fer.artifacts.metadata import artifact_files
from edge_fer.quantize.run import weight_range

CACHE_RECORD = "edge-fer-cache-entry/1"


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".cache.json")


def record_cache_entry(path: Path, source: str) -> None:
    """Write the record that lets a later bench reuse ``path``: its source key and every file's size and sha256."""
    write_json(_record_path(path), {"format": CACHE_RECORD, "source": source, "files": {
        f.name: {"size": f.stat().st_size, "sha256": sha256_file(f)} for f in artifact_files(path)}})


def _entry_intact(path: Path, source: str) -> bool:
    try:
        record = json.loads(_record_path(path).read_text())
        files = record["files"]
        return record.get("format") == CACHE_RECORD and record.get("source") == source and all(
            f.is_file() and files[f.name]["size"] == f.stat().st_size and files[f.name]["sha256"] == sha256_file(f)
            for f in artifact_files(path))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _cached(path: Path, source: str, build: Callable[[], None]) -> Path:
    """``path`` if its record vouches for it (same source, same bytes); otherwise the entry is removed and rebuilt."""
    if _entry_intact(path, source):
        return path
    for f in [*artifact_files(path), _record_path(path)]:
        f.unlink(missing_ok=True)
    build()
    record_cache_entry(path, source)
    return path


def cache_key(checkpoint: Path, weights_sha256: str) -> str:
    """sha256 over the weights' and the metadata's sha256: replacing either ``model.json`` or the weights
    gives another cache folder."""
    meta = checkpoint.with_suffix(".json")
    return hashlib.sha256(f"{weights_sha256} {sha256_file(meta)}".encode()).hexdigest()


@dataclass(frozen=True)
class CacheFolder:
    """One checkpoint's cache folder and the key (:func:`cache_key`) every entry's record there must carry."""

    path: Path
    key: str


@dataclass(frozen=True)
class CalibrationSet:
    """The bench's INT8 calibration images and the key INT8 entries are named after (that set and the
    quantization recipe)."""

    images: list[np.ndarray]
    key: str


def artifact(folder: CacheFolder, ckpt: Checkpoint, backend: str, precision: str, calib: CalibrationSet,
             log: Callable[[str], None]) -> Path:
    """Build the artifact for (backend, precision) unless the cache already has it.

    INT8 artifacts are named after the calibration set and the quantization recipe
    too (``calib.key``) and, on CPUs, the weight range, so a different calibration
    or a changed quantizer never reuses a stale INT8 model.
    """
    from edge_fer.build.openvino import build_intel_float
    from edge_fer.export.onnx_export import export_checkpoint
    from edge_fer.quantize.options import QuantizeOptions
    from edge_fer.quantize.run import quantize

    cache, source, calib_key = folder.path, folder.key, calib.key
    onnx_fp32 = cache / "fernet-fp32.onnx"

    def export() -> None:
        log("export -> ONNX fp32")
        export_checkpoint(copy.deepcopy(ckpt), onnx_fp32, calib.images[:100])  # the torch runner keeps its own model

    _cached(onnx_fp32, source, export)
    if backend == "onnxruntime" and precision == "fp32":
        return onnx_fp32
    if backend == "tensorrt":
        return _engine(folder, onnx_fp32, precision, calib, log)
    target = {"onnxruntime": "cpu", "openvino": "intel"}[backend]
    if weight_range(target, None)[0]:  # CPU INT8 also depends on the weight range this host's CPU calls for
        calib_key += "-w7"
    if backend == "onnxruntime":
        path = cache / f"fernet-{precision}-{calib_key}.onnx"

        def ort_int8() -> None:
            log(f"quantize -> ONNX {precision}")
            if precision == "int8-naive":
                _naive_ort_int8(onnx_fp32, path, calib.images)
            else:
                quantize(onnx_fp32, path, calib.images, QuantizeOptions(target="cpu"))

        return _cached(path, source, ort_int8)
    if precision == "int8":
        path = cache / f"fernet-int8-openvino-{calib_key}.xml"  # its OUT.json must not clash with the ORT one

        def nncf_int8() -> None:
            log("quantize -> OpenVINO int8 (NNCF)")
            quantize(onnx_fp32, path, calib.images, QuantizeOptions(target="intel"))

        return _cached(path, source, nncf_int8)
    path = cache / "fernet-fp32.xml"  # bf16/fp16 are compile-time choices on the same fp32 IR

    def ir() -> None:
        log("build -> OpenVINO IR fp32")
        build_intel_float(onnx_fp32, path)

    return _cached(path, source, ir)


def _engine(folder: CacheFolder, onnx_fp32: Path, precision: str, calib: CalibrationSet,
            log: Callable[[str], None]) -> Path:
    """A TensorRT engine built here (fp16 from the float ONNX, int8 from the jetson QDQ ONNX)."""
    from edge_fer.build.jetson import JetsonBuild, build_jetson
    from edge_fer.build.tensorrt import EngineSettings
    from edge_fer.quantize.options import QuantizeOptions
    from edge_fer.quantize.run import quantize

    cache, key = folder.path, folder.key
    source, path = onnx_fp32, cache / "fernet-fp16.engine"
    if precision == "int8":
        source, path = cache / f"fernet-int8-tensorrt-{calib.key}.onnx", cache / f"fernet-int8-{calib.key}.engine"
        qdq = source

        def jetson_int8() -> None:
            log("quantize -> TensorRT QDQ ONNX")
            quantize(onnx_fp32, qdq, calib.images, QuantizeOptions(target="jetson"))

        _cached(qdq, key, jetson_int8)

    def engine() -> None:
        log(f"build -> TensorRT {precision} engine")
        settings = EngineSettings(precision=precision, max_batch=ENGINE_MAX_BATCH)
        build_jetson(JetsonBuild(source, path, settings), log=log)

    return _cached(path, key, engine)


def _naive_ort_int8(onnx_fp32: Path, out: Path, calib: list[np.ndarray]) -> None:
    """The naive baseline: ``quantize_static`` with every option left at its default."""
    import onnx
    from onnxruntime.quantization import quantize_static

    from edge_fer.artifacts.atomic import atomic_path
    from edge_fer.data.preprocessing import preprocess
    from edge_fer.export.onnx_io import INPUT_NAME, read_info, set_metadata
    from edge_fer.quantize.ort import calibration_reader, quiet_root_logger

    info = read_info(onnx_fp32)
    reader = calibration_reader([preprocess([im], info.preprocessing) for im in calib], INPUT_NAME)
    with atomic_path(out) as tmp, quiet_root_logger():
        quantize_static(str(onnx_fp32), str(tmp), reader)
        proto = onnx.load(str(tmp))
        set_metadata(proto, {**info.to_strings(), "edge_fer.precision": "int8"})
        onnx.save_model(proto, str(tmp))


ENGINE_MAX_BATCH = 32  # TensorRT profile maximum for bench engines (accuracy runs in batches of 32)
