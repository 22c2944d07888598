"""Post-training INT8 quantization of an exported ONNX model (``edge-fer quantize``).

Three targets, one calibration set, one report:

``cpu``
    ONNX Runtime ``quantize_static``, QDQ format, per-channel weights.  U8S8
    (uint8 activations, int8 weights) was measured faster than S8S8 on this
    project's x86 box (AMD EPYC, AVX-512 VNNI, ORT 1.32, 1 thread, FERNet 224px
    width 1.0, median of 40): batch 1 fp32 3.96 ms, S8S8 3.92 ms, U8S8 2.56 ms;
    batch 8 fp32 33.9 ms, S8S8 28.5 ms, U8S8 18.5 ms (``benchmarks/quantize.md``).
    So activations are uint8 (asymmetric), weights int8 symmetric.  On CPUs
    without VNNI the weights use 7 bits (``reduce_range``, :func:`weight_range`):
    measured on FER+ test (AVX2 EPYC), top-1 agreement with float 91.5% -> 93.2%
    and ORT INT8 latency 8.6 -> 7.0 ms (one interleaved run).  The input conv and the CBAM/SE attention
    gates stay float (:func:`~edge_fer.quantize.ort.cpu_float_nodes`): ORT has no int8 reductions, so a
    quantized gate only adds Quantize/Dequantize work.
``jetson``
    QDQ ONNX for TensorRT explicit quantization: int8 activations and weights,
    both symmetric (all zero points 0), weights per output channel (axis 0),
    biases left float (TensorRT fuses them itself), Q/DQ on convolution inputs only,
    CBAM's spatial-attention convs float (:mod:`edge_fer.quantize.tensorrt_qdq`) and, by default
    (``--depthwise``, :data:`~edge_fer.quantize.choices.DEPTHWISE_DEFAULT`), the depthwise convs.
    :func:`check_tensorrt_qdq` verifies those rules on the written graph.  Its held-out check (and ``--max-drop``)
    runs the Q/DQ pairs as float ops: TensorRT's int8 numerics, not ORT's x86 kernels,
    which saturate on full-range weights without VNNI (52.5% vs 88.3% agreement measured).
``intel``
    NNCF ``nncf.quantize`` on the OpenVINO model (preset PERFORMANCE: symmetric),
    saved as IR ``OUT.xml`` + ``OUT.bin`` with weights kept int8/f32 (no fp16 compression).
    Without VNNI, NNCF's overflow fix covers every layer (agreement 93.6% ->
    94.6% on FER+ test here).  The cosine head's L2 normalisation stays float, and by default the depthwise
    convs (NNCF quantizes their inputs per channel: :data:`edge_fer.quantize.exclude.DEPTHWISE_REASON`);
    ``--method entropy`` is ORT-only (``percentile`` maps to NNCF's mean-quantile range estimator).

Every output carries the source's edge-fer metadata plus ``edge_fer.precision=int8``,
is written atomically and is byte-identical for identical inputs.  ``OUT.json``
next to it records calibration, exclusions, timing, sizes and float-vs-INT8
agreement on a held-out fifth of the calibration images (never calibrated on).

``--method entropy|percentile`` on the ORT targets clip each activation at a KL-optimal
(never cutting more than 0.1% of values) or 99.999th-percentile |x| (``--percentile``), from streaming histograms
(:mod:`edge_fer.quantize.activation_ranges`), so memory stays at one batch's activations whatever the
calibration set's size.  Percentile is the default of every target (:data:`~edge_fer.quantize.choices.DEFAULT_METHOD`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edge_fer import platform as host
from edge_fer.artifacts.atomic import check_sidecar, commit, refuse_inputs, staging_dir, write_json
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo, artifact_bytes
from edge_fer.artifacts.openvino_ir import save_ir
from edge_fer.compare import compare_logits
from edge_fer.data.preprocessing import preprocess
from edge_fer.export.onnx_io import OnnxModel, check_float_model, graph_dims, load_onnx, save_onnx, set_metadata
from edge_fer.platform import peak_rss_mb
from edge_fer.quantize.choices import check_choices, depthwise_choice, percentile_choice
from edge_fer.quantize.exclude import resolve_exclude
from edge_fer.quantize.openvino_nncf import float_convolutions, nncf_qdq, nncf_quantize
from edge_fer.quantize.options import QuantizeOptions, Recipe
from edge_fer.quantize.ort import OrtRun, ort_quantize, prepare_float, recipe_float_nodes
from edge_fer.quantize.qat import QatOptions
from edge_fer.quantize.qat_select import QatContext, budget_from, check_qat_args, run_qat
from edge_fer.quantize.sensitivity import DropBudget, bound_drop, open_for_target, val_accuracy
from edge_fer.quantize.tensorrt_qdq import check_tensorrt_qdq
from edge_fer.train.metrics import batched_logits

RECIPE = 11  # bumped whenever the same inputs would quantize differently (caches key INT8 artifacts on it)
# 6: minmax from every calibration batch (ORT's chunked minmax had kept only the last chunk's ranges),
#    histogram extremes exact rather than sampled
# 7: jetson puts Q/DQ on convolution inputs only and keeps CBAM's spatial-attention convs float
#    (tensorrt_qdq.TENSORRT_QUANTIZED_OPS)
# 8: jetson calibrates with percentile by default (chosen on the shipped model's val)
# 9: cpu calibrates with percentile by default (chosen on the shipped model's val, benchmarks/calibration_size.py)
# 10: jetson and intel keep depthwise convolutions float by default (choices.DEPTHWISE_DEFAULT); intel's --exclude of a
#     biased Conv by its ONNX name keeps that conv float (it had kept only its bias Add)
# 11: percentile keeps the 99.999th |x| (was 99.99), NNCF's mean-quantile likewise (--percentile)
CALIB_BATCH = 8
HOLDOUT_EVERY = 5  # every 5th calibration image is held out for the agreement check
REPORT_FORMAT = "edge-fer-quantize-report/1"  # OUT.json only ever replaces a file that carries this


# ----------------------------------------------------------------------------- input model


def report_path(out: Path) -> Path:
    """Where the report of the model ``out`` goes."""
    return out.with_suffix(".json")


def output_metadata(proto: onnx.ModelProto, info: ModelInfo, target: str, method: str) -> dict[str, str]:
    """Source edge-fer metadata + :class:`ModelInfo` + INT8 markers."""
    props = {p.key: p.value for p in proto.metadata_props if p.key.startswith("edge_fer.")}
    props.update(info.to_strings())
    props.update({"edge_fer.precision": "int8", "edge_fer.quant_target": target, "edge_fer.quant_method": method})
    return props


# ----------------------------------------------------------------------------- ONNX Runtime (cpu, jetson)


def check_outputs(model: Path, out_path: Path, target: str, manifest: str | Path | None = None) -> list[Path]:
    """The files quantize will write (model, report, IR .bin), refused up front where they would destroy
    an input (the model, the calibration manifest) or a report edge-fer did not write for this model."""
    out = output_path(Path(out_path), target)
    report_file = report_path(out)
    if not out.parent.is_dir():
        raise EdgeFerError(f"{out}: folder {out.parent} does not exist; create it or choose another output path")
    outputs = [out, report_file, *([out.with_suffix(".bin")] if target == "intel" else [])]
    refuse_inputs(outputs, [model, *([Path(manifest)] if manifest else [])])
    check_sidecar(report_file, REPORT_FORMAT, out)
    return outputs


def weight_range(target: str, reduce_range: bool | None) -> tuple[bool, str]:
    """Whether weights use 7 bits (``reduce_range``) and why; ``None`` decides from this host's CPU.

    ONNX Runtime's and OpenVINO's x86 INT8 kernels multiply u8 activations by s8
    weights with vpmaddubsw where VNNI is missing: each pair of products lands in a
    saturating int16, which 8-bit weights can overflow.  7-bit weights cannot, and
    cost half a bit where VNNI would have summed exactly.
    """
    if target == "jetson":
        return False, "TensorRT computes int8 x int8 in int32: full 8-bit weights"
    if reduce_range is not None:
        return reduce_range, "as asked (--reduce-range/--full-range)"
    if host.has_int8_dot_product():
        return False, f"{host.cpu_name()} has VNNI (int8 dot products into int32): full 8-bit weights"
    return True, (f"{host.cpu_name()} lacks VNNI: u8 x s8 pairs sum into a saturating int16, so weights use 7 "
                  "bits (--full-range to override when the model will run on a VNNI CPU)")


# ----------------------------------------------------------------------------- OpenVINO / NNCF (intel)


# ----------------------------------------------------------------------------- driver


def split_holdout(images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration, held-out): every ``HOLDOUT_EVERY``-th image is held out."""
    calib = [im for i, im in enumerate(images) if i % HOLDOUT_EVERY != HOLDOUT_EVERY - 1]
    held = [im for i, im in enumerate(images) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    return calib, held


def make_batches(images: Sequence[np.ndarray], info: ModelInfo, batch_size: int = CALIB_BATCH) -> list[np.ndarray]:
    return [preprocess(images[i:i + batch_size], info.preprocessing) for i in range(0, len(images), batch_size)]


def output_path(out: Path, target: str) -> Path:
    """The model path: ``.onnx`` for cpu/jetson, ``.xml`` for intel (suffix added or checked)."""
    want = ".xml" if target == "intel" else ".onnx"
    if out.suffix.lower() in (".onnx", ".xml") and out.suffix.lower() != want:
        raise EdgeFerError(f"-o {out}: --target {target} writes a {want} file")
    return out if out.suffix.lower() == want else out.with_name(out.name + want)


def load_val(folder: Path | str, info: ModelInfo, skips) -> tuple[list[np.ndarray], np.ndarray]:
    """``--val``: the labelled images the accuracy budget is measured on (none readable is an error)."""
    from edge_fer.data.dataset import load_labelled

    images, labels = load_labelled(folder, info.classes, skips)
    if not images:
        raise EdgeFerError(f"--val {folder}: no readable images")
    return images, labels


def quantize(model: Path | str | OnnxModel, out_path: Path | str, images: Sequence[np.ndarray],
             opts: QuantizeOptions | None = None, calibration: dict | None = None,
             log: Callable[[str], None] = lambda _msg: None, console=None) -> dict:
    """Quantize ``model`` to INT8 for ``target``; writes the model and ``OUT.json``; returns the report.

    ``model``: the float ONNX file, or that model already read by the caller (build), whose metadata is then
    not parsed again (nor ``classes``/``img_size`` applied).  ``opts`` None: the defaults of
    :class:`QuantizeOptions`.  With ``max_drop`` and a labelled ``val`` folder, the most quantization-sensitive
    layers are kept float until top-1 accuracy drops by at most ``max_drop`` percentage
    points (the same unit as ``edge-fer bench --max-drop``).  ``reduce_range`` None
    picks 7- or 8-bit weights from this host's CPU (:func:`weight_range`); ``method``
    None takes the target's measured best (:data:`~edge_fer.quantize.choices.DEFAULT_METHOD`).  ``qat`` fine-tunes the
    INT8 model after PTQ (:mod:`edge_fer.quantize.qat_select`); with a budget (``max_drop`` points,
    ``min_agreement`` percent) only where PTQ misses it, instead of keeping layers float.
    """
    start = time.perf_counter()
    opts = opts or QuantizeOptions()
    target, max_drop, val = opts.target, opts.max_drop, opts.val
    check_qat_args(opts.qat, opts.min_agreement)
    method = check_choices(target, opts.method, max_drop is not None or opts.min_agreement is not None, val)
    depthwise = depthwise_choice(target, opts.depthwise)
    percentile = percentile_choice(method, opts.percentile)
    onnx_path = model.path if isinstance(model, OnnxModel) else Path(model)
    manifest = (calibration or {}).get("source") if (calibration or {}).get("kind") == "manifest" else None
    outputs = check_outputs(onnx_path, Path(out_path), target, manifest)
    out, report_file = outputs[0], outputs[1]
    proto, info = _float_model(model, opts)
    calib_images, held = calibration_split(images)
    static = graph_dims(proto, "input")[:1]
    from edge_fer.data.dataset import SkipReport
    val_skips = SkipReport()
    narrow, why = weight_range(target, opts.reduce_range)
    job = _Job(target, method, opts.per_channel, narrow, depthwise == "float", percentile, opts.exclude, info,
               output_metadata(proto, info, target, method),
               make_batches(calib_images, info, static[0] if static and static[0] else CALIB_BATCH),
               load_val(val, info, val_skips) if val is not None else None,
               None if max_drop is None else max_drop / 100.0, onnx_path, log,  # points -> fraction of accuracy
               opts.qat is None and val is not None)
    report: dict = {"format": REPORT_FORMAT, "model": str(onnx_path), "output": str(out),
                    "target": target, "method": method, "percentile": percentile if method == "percentile" else None,
                    "depthwise": depthwise, "recipe": RECIPE,
                    "per_channel": opts.per_channel, "reduce_range": {"enabled": narrow, "reason": why},
                    "calibration": {**(calibration or {}), "used": len(calib_images), "held_out": len(held)}}
    with staging_dir(out) as work:  # beside the output: removed on every exit, never left in /tmp
        (work / "out").mkdir()  # the files to commit, apart from the working files (whatever -o is named)
        staged = work / "out" / out.name
        set_metadata(proto, info.to_strings())  # by-hand metadata reaches the float reference too
        float_path = prepare_float(proto, work)
        if target == "intel":
            report.update(_quantize_intel(job, float_path, staged))
        else:
            report.update(_quantize_ort(job, float_path, work, staged, out))
        if opts.qat is not None:
            report["qat"] = _qat(job, opts.qat, float_path, held, staged, budget_from(max_drop, opts.min_agreement),
                                 console)
        report["quantize_seconds"] = round(time.perf_counter() - start, 2)
        if held:
            reference = open_for_target(float_path, info)
            cmp = compare_logits(batched_logits(reference, held, info.preprocessing),
                                 batched_logits(open_for_target(staged, info, target), held, info.preprocessing))
            report["float_vs_int8_heldout"] = cmp.to_dict()
        if job.val_data is not None:
            report["val"] = {"folder": str(val), "n": len(job.val_data[0]), "skipped": len(val_skips.skipped),
                             "float_accuracy": val_accuracy(float_path, info, job.val_data),
                             "int8_accuracy": val_accuracy(staged, info, job.val_data, target),
                             "max_drop_pt": max_drop}
        report["sizes_bytes"] = {"float": onnx_path.stat().st_size, "int8": artifact_bytes(staged)}
        report["total_seconds"] = round(time.perf_counter() - start, 2)
        report["peak_rss_mb"] = round(peak_rss_mb(), 1)
        write_json(work / "out" / report_file.name, report)
        # model (+ .bin) and report land together: no model without its report, none beside an old one
        commit([(work / "out" / f.name, f) for f in outputs])
    return report


def _float_model(model: Path | str | OnnxModel, opts: QuantizeOptions) -> tuple[onnx.ModelProto, ModelInfo]:
    """The float graph and its metadata: read and checked here, or checked and copied (quantize sets metadata
    on its graph, and the caller's stays as it was) where the caller has read it."""
    if not isinstance(model, OnnxModel):
        return load_onnx(model, opts.classes, opts.img_size)
    check_float_model(model)
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    return proto, model.info


def calibration_split(images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration images in whole batches, held-out images): every method and target calibrates on the same."""
    calib_images, held = split_holdout(images)
    calib_images = calib_images[:len(calib_images) - len(calib_images) % CALIB_BATCH]
    if len(calib_images) < CALIB_BATCH:
        raise EdgeFerError(f"only {len(calib_images)} calibration images after holding out {len(held)} for the "
                           f"agreement check; need at least {CALIB_BATCH}")
    return calib_images, held


@dataclass(frozen=True)
class _Job:
    """One quantization's resolved inputs: what the intel and ONNX Runtime steps both read."""

    target: str
    method: str
    per_channel: bool
    narrow: bool  # 7-bit weights (see weight_range)
    depthwise_float: bool
    percentile: float
    exclude: Sequence[str]
    info: ModelInfo
    props: dict[str, str]  # metadata of the output
    batches: list[np.ndarray]
    val_data: tuple[list[np.ndarray], np.ndarray] | None
    budget: float | None  # --max-drop as a fraction of accuracy
    where: Path  # the user's model, named in errors
    log: Callable[[str], None]
    control: bool  # --max-drop keeps layers float (NNCF accuracy control, SQNR fallback); with --qat, QAT decides

    @property
    def recipe(self) -> Recipe:
        return Recipe(self.target, self.method, self.per_channel, self.narrow, self.depthwise_float, self.percentile)


def _quantize_intel(job: _Job, float_path: Path, staged: Path) -> dict:
    """NNCF (with accuracy control under ``--max-drop``) into the IR ``staged``; returns the report entries."""
    accuracy = None
    if job.control:
        def validate(compiled, items) -> float:
            # items: (one preprocessed image, its label); NNCF ranks on subsets of them
            hits = [int(np.asarray(compiled(x)[compiled.output(0)]).argmax()) == y for x, y in items]
            return float(np.mean(hits)) if hits else 0.0

        labelled = list(zip(make_batches(job.val_data[0], job.info, 1), job.val_data[1].tolist(), strict=True))
        accuracy = (validate, labelled, job.budget)
    job.log("calibrating with NNCF")
    done = nncf_quantize(float_path, job.batches, job.recipe, job.exclude, accuracy)
    save_ir(done.model, staged, job.props)
    report: dict = {"excluded": done.excluded,
                    "intel_float": [{"node": n, "reason": why} for n, why in done.recipe_reasons.items()]}
    if job.control:
        why = ("float in the final IR: either NNCF never quantizes it (e.g. CBAM spatial conv, shared-"
               "weight MLP branch) or accuracy control reverted it to meet --max-drop on --val")
        report["kept_float"] = [{"node": n, "reason": why} for n in float_convolutions(done.model)
                                if n not in done.excluded and n not in done.recipe_float]
    return report


def _quantize_ort(job: _Job, float_path: Path, work: Path, staged: Path, out: Path) -> dict:
    """ONNX Runtime QDQ (cpu, jetson) into ``staged``, layers kept float under ``--max-drop``; the report entries."""
    report: dict = {}
    float_proto = onnx.load(str(float_path))
    nodes = [(n.name, n.op_type) for n in float_proto.graph.node]
    excluded = resolve_exclude(job.exclude, nodes)
    qdq = work / "int8.onnx"
    job.log("calibrating with ONNX Runtime")
    run = OrtRun(float_path, job.batches, job.recipe, work / "ranges.json", job.log, job.where)
    ort_quantize(run, qdq, excluded)
    if job.control:
        excluded, report["accuracy_control"] = bound_drop(run, qdq, excluded, nodes,
                                                          DropBudget(job.info, job.val_data, job.budget))
    qproto = onnx.load(str(qdq))
    set_metadata(qproto, job.props)
    if job.target == "jetson":
        problems = check_tensorrt_qdq(qproto)
        if problems:
            raise EdgeFerError(f"{out}: QDQ graph breaks TensorRT rules: {'; '.join(problems[:5])}")
        report["tensorrt_qdq_check"] = "passed"
    save_onnx(qproto, staged)
    report["excluded"] = excluded
    report[f"{job.target}_float"] = [{"node": n, "reason": why}
                                     for n, why in recipe_float_nodes(float_proto, job.recipe).items()]
    return report


def _qat(job: _Job, opts: QatOptions, float_path: Path, held: list[np.ndarray], staged: Path, budget, console) -> dict:
    """``--qat``: fine-tune the graph this target runs (for intel NNCF's QDQ) unless PTQ meets ``budget``."""
    ctx = QatContext(job.target, job.info, float_path, held, lambda p: open_for_target(p, job.info, job.target),
                     staged, job.props, budget, job.val_data, job.log, console)
    if job.target == "intel":
        def graph() -> onnx.ModelProto:
            return nncf_qdq(float_path, job.batches, job.recipe, job.exclude)
    else:
        def graph() -> onnx.ModelProto:
            return onnx.load(str(staged))
    return run_qat(graph, ctx, opts)


def summary_lines(report: dict, calibration: dict) -> list[str]:
    """What quantize wrote and how close INT8 stays to float, then its warnings (for the terminal)."""
    cmp = report.get("float_vs_int8_heldout", {})
    lines = [f"wrote {report['output']} ({report['sizes_bytes']['int8'] / 1e6:.2f} MB, "
             f"{report['quantize_seconds']:.1f} s); held-out float vs INT8: top-1 agreement "
             f"{cmp.get('top1_agreement', float('nan')):.2%}, max |dlogit| {cmp.get('max_abs_logit_diff', 0):.3f}"]
    if "val" in report:
        v = report["val"]
        budget = f"budget {v['max_drop_pt']:.2f} pt" if v["max_drop_pt"] is not None else "no accuracy budget"
        lines.append(f"val accuracy float {v['float_accuracy']:.2%} -> INT8 {v['int8_accuracy']:.2%} ({budget})")
    if "qat" in report:
        q, done = report["qat"], report["qat"].get("qat", {})
        parity = done.get("runtime_vs_simulation", {})
        lines.append(f"path: {q['path']}" + (f"; QAT {done['seconds']:.0f} s, kept epoch {done['kept_epoch']}, "
                                             f"runtime vs simulation {parity['top1_agreement']:.2%}" if done else ""))
    control = report.get("accuracy_control", {})
    notes = (control.get("note"), control.get("warning"), calibration.get("warning"))
    return lines + [f"[yellow]warning:[/] {note}" for note in notes if note]
