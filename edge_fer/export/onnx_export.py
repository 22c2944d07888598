"""PyTorch -> ONNX, verified against PyTorch on real faces (``edge-fer export``).

Uses the TorchScript-based exporter (``dynamo=False``): with torch 2.13 the
dynamo exporter silently emits opset 18 when 17 is asked and writes weights to
a side ``.onnx.data`` file; opset 17 is what ORT's quantization tools,
TensorRT 8.6 and OpenVINO all accept.  The graph is NCHW float32 ``images`` ->
``logits``, batch dynamic (or static), spatial size fixed to the metadata's.

No onnxslim pass: measured on the reference model (``benchmarks/onnxslim_eval.py``),
it folds the cosine head's weight normalisation (121 -> 114 nodes written), but
ONNX Runtime executes the same 97 nodes either way after its own load-time
optimisation, latency is equal (8.38 vs 8.41 ms) and logits are identical.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from edge_fer.artifacts.atomic import atomic_path, refuse_inputs
from edge_fer.artifacts.checkpoint import Checkpoint
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.backends.onnxruntime_backend import OrtRunner
from edge_fer.backends.torch_backend import TorchRunner
from edge_fer.compare import Comparison, compare_logits
from edge_fer.export.onnx_io import INPUT_NAME, OUTPUT_NAME, save_onnx, set_metadata
from edge_fer.train.metrics import batched_logits


def to_onnx(ckpt: Checkpoint, opset: int = 17, dynamic_batch: bool = True, img_size: int | None = None,
            source_sha256: str = "") -> tuple[onnx.ModelProto, ModelInfo]:
    """The checkpoint as an in-memory ONNX model with edge-fer metadata."""
    size = img_size or ckpt.preprocessing.img_size
    info = ModelInfo(ckpt.classes, ckpt.preprocessing.with_size(size), source_sha256,
                     extra={"precision": "fp32", "architecture": ckpt.config.attention})
    model = ckpt.model.eval().to(memory_format=torch.contiguous_format)
    buf = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(model, (torch.zeros(1, 3, size, size),), buf, dynamo=False, opset_version=opset,
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes,
                      do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    got = {o.domain or "ai.onnx": o.version for o in proto.opset_import}.get("ai.onnx")
    if got != opset:
        raise EdgeFerError(f"exporter wrote opset {got}, not the {opset} asked for; use another --opset")
    proto.producer_name = "edge-fer"
    set_metadata(proto, info.to_strings())
    return proto, info


def verify(reference: TorchRunner, candidate_path: Path | str, faces: Sequence[np.ndarray],
           tolerance: float, where: Path | str | None = None) -> Comparison:
    """Run ``faces`` through PyTorch and ONNX Runtime; raise if they disagree beyond ``tolerance``.

    A NaN or inf logit on either side fails (NaN compares false with any tolerance).
    ``where`` names the output in errors (``candidate_path`` may be a temp file).
    """
    where = where or candidate_path
    candidate = OrtRunner.open(candidate_path)
    spec = candidate.info.preprocessing
    ref = batched_logits(reference, faces, spec)
    if not np.isfinite(ref).all():
        raise EdgeFerError(f"{where}: not written: the checkpoint itself gives non-finite logits (NaN/inf) in "
                           "PyTorch on the verification faces; its weights are broken: re-train or restore them")
    cmp = compare_logits(ref, batched_logits(candidate, faces, spec))
    if not cmp.within(tolerance):
        raise EdgeFerError(f"{where}: ONNX output differs from PyTorch ({cmp}; tolerance {tolerance:g}); "
                           "the export is wrong: try another --opset or report the model")
    return cmp


@dataclass(frozen=True)
class ExportOptions:
    """What one ``edge-fer export`` is asked besides the checkpoint, the output and the verification faces."""

    opset: int = 17
    dynamic_batch: bool = True
    img_size: int | None = None  # None: the checkpoint's
    tolerance: float = 1e-3  # max |logit difference| to PyTorch


def export_checkpoint(ckpt: Checkpoint, out: Path | str, faces: Sequence[np.ndarray],
                      opts: ExportOptions | None = None) -> Comparison:
    """Export, verify on ``faces`` against PyTorch, and only then move the file into place."""
    opts = opts or ExportOptions()
    opset, dynamic_batch, img_size, tolerance = opts.opset, opts.dynamic_batch, opts.img_size, opts.tolerance
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise EdgeFerError(f"--tolerance {tolerance}: give a finite number >= 0")
    if opset < 17:
        raise EdgeFerError(f"--opset {opset}: edge-fer needs opset 17 or newer (LayerNorm-free graph, "
                           "but quantization and TensorRT tooling assume >= 17)")
    if ckpt.path:
        refuse_inputs([out], [ckpt.path, ckpt.path.with_suffix(".json")])
    sha = ckpt.sha256()
    proto, info = to_onnx(ckpt, opset, dynamic_batch, img_size, sha)
    reference = TorchRunner.from_checkpoint(ckpt)
    reference.info = info
    with atomic_path(out) as tmp:
        save_onnx(proto, tmp)
        return verify(reference, tmp, faces, tolerance, where=out)


def verification_faces(calib: Path | None) -> list[np.ndarray]:
    """The faces an export is verified on: up to 200 images of ``calib``, else the embedded LFW faces."""
    from edge_fer.data.dataset import IMAGE_SUFFIXES, SkipReport, inside, load_images
    from edge_fer.data.faces import embedded_faces

    if calib is None:
        return embedded_faces()
    files = [p for p in sorted(calib.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and inside(calib, p)][:200]
    faces, _ = load_images(files, SkipReport())
    if not faces:
        raise EdgeFerError(f"{calib}: no readable images to verify the export on")
    return faces
