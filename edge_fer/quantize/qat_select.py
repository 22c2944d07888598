"""``quantize --qat``: PTQ first, then quantization-aware fine-tuning where PTQ misses its budget.

The PTQ artifact is always made first.  Without a budget, ``--qat`` always fine-tunes
it.  With one (``--max-drop`` and/or ``--min-agreement``, measured on ``--val``), PTQ
ships when it meets the budget and QAT runs only when it does not; the report says
which path met it (or that neither did: then the better of the two ships).

Per target, the graph QAT fine-tunes is the one that target's runtime executes:

``cpu`` / ``jetson``
    The QDQ ONNX PTQ wrote (ONNX Runtime's u8/s8 recipe with its float layers; the
    symmetric TensorRT scheme).  The output is that graph with new weights.
``intel``
    NNCF's scheme as a QDQ ONNX (NNCF's ONNX backend, same preset, range
    estimator and float head as the OpenVINO path), fine-tuned, then converted by
    OpenVINO, which turns each Q/DQ pair into a FakeQuantize, and saved as the IR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo, artifact_files
from edge_fer.artifacts.openvino_ir import save_ir
from edge_fer.compare import compare_logits
from edge_fer.data.dataset import SkipReport
from edge_fer.export.onnx_io import save_onnx, set_metadata
from edge_fer.quantize.onnx_torch import OnnxModule
from edge_fer.quantize.qat import QatOptions, finetune, load_training_images, runtime_parity, simulate
from edge_fer.train.metrics import batched_logits, compute_metrics

PARITY_IMAGES = 512  # runtime-vs-simulation images: held-out calibration images, then training images


@dataclass(frozen=True)
class Budget:
    """What "good enough" means on labelled ``--val`` images; either bound may be absent."""

    max_drop: float | None = None  # accuracy drop, fraction (0.003 = 0.3 pt)
    min_agreement: float | None = None  # top-1 agreement with float, fraction

    def check(self, float_logits: np.ndarray, int8_logits: np.ndarray, labels: np.ndarray,
              classes: Sequence[str]) -> dict:
        base = compute_metrics(float_logits, labels, classes).accuracy
        acc = compute_metrics(int8_logits, labels, classes).accuracy
        agree = compare_logits(float_logits, int8_logits).top1_agreement
        met = ((self.max_drop is None or base - acc <= self.max_drop + 1e-12)
               and (self.min_agreement is None or agree >= self.min_agreement))
        return {"float_accuracy": base, "int8_accuracy": acc, "agreement": agree, "met": bool(met)}


@dataclass
class QatContext:
    """What one ``quantize`` run hands to the QAT step (all of it already loaded)."""

    target: str
    info: ModelInfo
    float_path: Path
    held_out: list[np.ndarray]
    open_runtime: Callable[[Path], Callable[[np.ndarray], np.ndarray]]  # target's numerics
    staged: Path  # the PTQ artifact, replaced by QAT's
    props: dict[str, str]  # the output's metadata
    budget: Budget | None
    val_data: tuple[list[np.ndarray], np.ndarray] | None
    log: Callable[[str], None]
    console: object = None


def _train_and_write(qdq: onnx.ModelProto, ctx: QatContext, opts: QatOptions) -> dict:
    from edge_fer.backends.onnxruntime_backend import OrtRunner

    skips = SkipReport()
    images = load_training_images(opts.data, opts.max_images, opts.seed, skips)
    ctx.log(f"QAT on {len(images)} images from {opts.data}")
    # The epoch is picked where most images are: labelled --val when given (thousands), else the held-out
    # fifth of the calibration set (about a hundred images: one image is a whole percent there).
    select, selected_on = ((ctx.val_data[0], "--val images") if ctx.val_data is not None
                           else (ctx.held_out, "held-out calibration images"))
    result = finetune(qdq, OrtRunner.open(ctx.float_path), images, select, ctx.info.preprocessing, opts,
                      ctx.console)
    result.report["epoch_selected_on"] = selected_on
    proto, staged, props = result.proto, ctx.staged, {**ctx.props, "edge_fer.qat": "1"}
    set_metadata(proto, props)
    if ctx.target == "intel":
        import openvino as ov

        qdq_path = staged.parent.parent / "qat.onnx"
        onnx.save_model(proto, str(qdq_path))
        save_ir(ov.convert_model(str(qdq_path)), staged, props)
    else:
        save_onnx(proto, staged)
    parity_images = [*ctx.held_out, *images[:max(0, PARITY_IMAGES - len(ctx.held_out))]]
    result.report["runtime_vs_simulation"] = runtime_parity(simulate(OnnxModule(proto)), ctx.open_runtime(staged),
                                                            parity_images, ctx.info.preprocessing)
    result.report["skipped_images"] = len(skips.skipped)
    if not result.report["runtime_vs_simulation"]["ok"]:
        ctx.log("warning: the runtime agrees with the QAT simulation on only "
                f"{result.report['runtime_vs_simulation']['top1_agreement']:.2%} of images")
    return result.report


def run_qat(qdq: Callable[[], onnx.ModelProto], ctx: QatContext, opts: QatOptions) -> dict:
    """Replace the PTQ artifact at ``ctx.staged`` with its QAT version unless PTQ meets the budget; the report.

    ``qdq`` builds the graph to fine-tune (only called when QAT runs: for intel it is a second calibration).
    """
    budget, val_data, staged = ctx.budget, ctx.val_data, ctx.staged
    section: dict = {"budget": None if budget is None else vars(budget)}
    reference = None
    if budget is not None:
        if val_data is None:
            raise EdgeFerError("--max-drop/--min-agreement need labelled --val images to measure the budget on")
        reference = batched_logits(ctx.open_runtime(ctx.float_path), val_data[0], ctx.info.preprocessing)
        ptq = budget.check(reference, batched_logits(ctx.open_runtime(staged), val_data[0], ctx.info.preprocessing),
                           val_data[1], ctx.info.classes)
        section["ptq"] = ptq
        if ptq["met"]:
            section["path"] = "ptq"
            return section
    ptq_bytes = {p: p.read_bytes() for p in artifact_files(staged)}
    section["qat"] = _train_and_write(qdq(), ctx, opts)
    section["path"] = "qat"
    if budget is not None:
        after = budget.check(reference, batched_logits(ctx.open_runtime(staged), val_data[0], ctx.info.preprocessing),
                             val_data[1], ctx.info.classes)
        section["qat"]["val"] = after
        if not after["met"]:
            better = (after["agreement"], after["int8_accuracy"]) >= (ptq["agreement"], ptq["int8_accuracy"])
            section["path"] = "neither (QAT kept: closer to float)" if better else "neither (PTQ kept: closer to float)"
            if not better:
                for path, data in ptq_bytes.items():
                    path.write_bytes(data)
    return section


def budget_from(max_drop_pt: float | None, min_agreement_pct: float | None) -> Budget | None:
    """The CLI's points/percent as fractions; None when neither bound is given."""
    if max_drop_pt is None and min_agreement_pct is None:
        return None
    return Budget(None if max_drop_pt is None else max_drop_pt / 100.0,
                  None if min_agreement_pct is None else min_agreement_pct / 100.0)


def check_qat_args(qat: QatOptions | None, min_agreement: float | None) -> None:
    if qat is None and min_agreement is not None:
        raise EdgeFerError("--min-agreement chooses between PTQ and QAT; add --qat DIR (a folder of face images)")
    if qat is not None and qat.epochs < 1:
        raise EdgeFerError(f"--qat-epochs {qat.epochs}: give at least 1")
