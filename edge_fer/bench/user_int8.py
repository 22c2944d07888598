"""``edge-fer bench --int8 FILE``: a user's own INT8 artifact (``quantize --qat``'s, another recipe's) benched beside
bench's PTQ in the same interleaved run.

The point is a side-by-side answer: is the INT8 model I will ship as fast as PTQ's and
closer to float?  Latency measured in two runs on a noisy machine cannot say that.
Because the file is the one that ships, it is gated; bench's own PTQ row of the same
backend stays in every table as ``compared`` and no longer decides the exit status.

A file is refused unless it is what the comparison needs: made from this checkpoint
(its metadata's source sha256), INT8, quantized for this ``--device``, at the
checkpoint's input size, and run by one of the device's backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.backends import backend_for, open_runner
from edge_fer.backends.base import Runner
from edge_fer.bench.options import DEVICE_ROWS
from edge_fer.data.preprocessing import Preprocessing

COMPARED = "compared"  # the role of bench's PTQ row where an --int8 file of its backend is the INT8 that ships


def row_name(backend: str, path: Path, taken: set[str]) -> str:
    """``onnxruntime int8 (fernet-cpu-qat)``: the backend and precision like every row, then the file; unique."""
    name, n = f"{backend} int8 ({path.stem})", 2
    while name in taken:
        name, n = f"{backend} int8 ({path.stem} #{n})", n + 1
    return name


@contextmanager
def _flagged() -> Iterator[None]:
    """The shared backends' errors (``FILE: file not found``, an unknown type, a broken model) name the flag too."""
    try:
        yield
    except EdgeFerError as e:
        raise EdgeFerError(f"--int8 {e}") from None


def user_backend(path: Path, device: str) -> str:
    """The backend that runs ``path``, refused unless ``--device`` benches that backend."""
    with _flagged():
        backend = backend_for(path)
    backends = sorted({b for b, _ in DEVICE_ROWS[device]})
    if backend not in backends:
        raise EdgeFerError(f"--int8 {path}: --device {device} runs {' or '.join(backends)} models, not {backend}; "
                           f"give the file edge-fer quantize/build wrote for --target {device}")
    return backend


def open_user_int8(path: Path, device: str, checkpoint: Path, ckpt_sha: str, preprocessing: Preprocessing,
                   threads: int | None) -> Runner:
    """Open ``path`` (checked by :func:`user_backend`), refused with the fix where it cannot be compared with this
    checkpoint."""
    with _flagged():
        runner = open_runner(path, threads=threads)
    info = runner.info
    if info.source_sha256 != ckpt_sha:
        made_from = f"checkpoint sha256 {info.source_sha256[:12]}..." if info.source_sha256 else "an unknown model"
        raise EdgeFerError(f"--int8 {path}: made from {made_from}, not from {checkpoint} (sha256 {ckpt_sha[:12]}...); "
                           "quantize this checkpoint's ONNX, or bench the checkpoint it came from")
    if "int8" not in runner.precision:
        raise EdgeFerError(f"--int8 {path}: not an INT8 model (it runs {runner.precision}); give the output of "
                           "edge-fer quantize")
    target = info.extra.get("quant_target")
    if target and target != device:
        raise EdgeFerError(f"--int8 {path}: quantized for --target {target}; bench it with --device {target}, or "
                           f"quantize for --target {device}")
    if info.preprocessing != preprocessing:
        raise EdgeFerError(f"--int8 {path}: its input is {info.img_size} px with its own preprocessing, the "
                           f"checkpoint's {preprocessing.img_size} px; quantize an ONNX exported from it unchanged")
    return runner


def mark_compared(rows: dict[str, dict]) -> None:
    """Bench's PTQ row of each backend an ``--int8`` file ran on (a row with a ``file``) becomes :data:`COMPARED`
    (shown, not gated)."""
    for row in [r for r in rows.values() if "file" in r]:
        ptq = rows.get(f"{row['backend']} int8")
        if ptq is not None:
            ptq["role"] = COMPARED
