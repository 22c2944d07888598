"""``edge-fer bench``: build (or reuse) the artifacts a device runs, then time and compare them side by side.

Artifacts are cached under ``CACHE/<sha256 of the checkpoint's weights and metadata>[:16]/``:
a changed checkpoint (weights or ``model.json``) gets a new folder, so a stale artifact
is never benchmarked.  Each entry has a record (``NAME.cache.json``: that key, and the
size and sha256 of every file) checked on reuse; a truncated or replaced entry is
rebuilt, never blamed on the user.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edge_fer import __version__
from edge_fer import platform as host
from edge_fer.artifacts.atomic import write_json, write_text
from edge_fer.artifacts.checkpoint import load_checkpoint, sha256_file, weights_path
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import artifact_bytes
from edge_fer.artifacts.plots import plot_confusions_side_by_side
from edge_fer.backends import open_runner
from edge_fer.backends.base import Runner
from edge_fer.bench.measure import all_logits, measure_energy, parity, recommend, time_interleaved, verdict
from edge_fer.bench.remote import Remote, run_remote
from edge_fer.bench.tegrastats import TegraStats, power_state
from edge_fer.data.dataset import SkipReport, load_images, scan_folder
from edge_fer.data.faces import EMBEDDED_NAME, embedded_faces
from edge_fer.platform import current_rss_mb, peak_rss_mb
from edge_fer.quantize.calibration import load_calibration
from edge_fer.quantize.run import RECIPE, weight_range

CALIB_SIZE = 512  # images sampled when --calib is a folder (seed 0), as edge-fer quantize does

# Which (backend, precision) rows each device benchmarks; torch fp32 is always the baseline
# (on CUDA where there is one: the Jetson's float reference).
DEVICE_ROWS = {
    "cpu": [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("onnxruntime", "int8-naive")],
    "intel": [("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("openvino", "default"),
              ("onnxruntime", "fp32")],
    "jetson": [("tensorrt", "fp16"), ("tensorrt", "int8")],
}
ENGINE_MAX_BATCH = 32  # TensorRT profile maximum for bench engines (accuracy runs in batches of 32)


def select_rows(device: str, backends: tuple[str, ...] = (), precisions: tuple[str, ...] = ()
                ) -> list[tuple[str, str]]:
    """The device's rows, narrowed by ``--backends``/``--precisions`` (``int8`` includes the naive baseline)."""
    if device not in DEVICE_ROWS:
        raise EdgeFerError(f"--device {device!r}: use one of {', '.join(DEVICE_ROWS)}")
    rows = DEVICE_ROWS[device]
    valid_backends = sorted({b for b, _ in rows})
    valid_precisions = sorted({p.split("-")[0] for _, p in rows})
    for given, valid, flag in ((backends, valid_backends, "--backends"),
                               (precisions, valid_precisions, "--precisions")):
        unknown = [g for g in given if g not in valid and g not in ("torch", "fp32")]
        if unknown:
            raise EdgeFerError(f"{flag} {','.join(unknown)}: --device {device} benchmarks {', '.join(valid)} "
                               "(torch fp32 always runs as the baseline)")
    return [(b, p) for b, p in rows if (not backends or b in backends) and
            (not precisions or p.split("-")[0] in precisions)]


@dataclass
class BenchOptions:
    device: str = "cpu"
    data: Path | None = None
    batches: tuple[int, ...] = (1,)
    warmup: int = 20
    iters: int = 200
    threads: int | None = None
    max_drop: float = 1.0
    min_agreement: float = 0.99
    cache: Path = Path(".edge-fer-cache")
    out: Path = Path("bench-out")
    calib: str | None = None  # folder or manifest for INT8 calibration; None: the embedded faces
    backends: tuple[str, ...] = ()  # empty: every backend of the device
    precisions: tuple[str, ...] = ()
    seconds: float | None = None  # timed rounds by wall time instead of --iters
    energy_seconds: float = 3.0  # jetson with tegrastats: per backend and batch size
    wide: bool = False  # terminal table with every column (report.md and results.json always have them)


# What a bench writes to --out; a reused folder loses the previous run's copies, so it describes one run.
OUTPUT_FILES = ("results.json", "report.md", "latency.png", "confusion_float_vs_int8.png", "per_class_delta.png")


def clear_outputs(out: Path) -> None:
    """Remove an earlier bench's files from ``out`` (only the names a bench writes: nothing else is touched)."""
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)


CACHE_RECORD = "edge-fer-cache-entry/1"


def _entry_files(path: Path) -> list[Path]:
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".cache.json")


def record_cache_entry(path: Path, source: str) -> None:
    """Write the record that lets a later bench reuse ``path``: its source key and every file's size and sha256."""
    write_json(_record_path(path), {"format": CACHE_RECORD, "source": source, "files": {
        f.name: {"size": f.stat().st_size, "sha256": sha256_file(f)} for f in _entry_files(path)}})


def _entry_intact(path: Path, source: str) -> bool:
    try:
        record = json.loads(_record_path(path).read_text())
        files = record["files"]
        return record.get("format") == CACHE_RECORD and record.get("source") == source and all(
            f.is_file() and files[f.name]["size"] == f.stat().st_size and files[f.name]["sha256"] == sha256_file(f)
            for f in _entry_files(path))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _cached(path: Path, source: str, build: Callable[[], None]) -> Path:
    """``path`` if its record vouches for it (same source, same bytes); otherwise the entry is removed and rebuilt."""
    if _entry_intact(path, source):
        return path
    for f in [*_entry_files(path), _record_path(path)]:
        f.unlink(missing_ok=True)
    build()
    record_cache_entry(path, source)
    return path


def cache_key(checkpoint: Path) -> str:
    """sha256 over the weights' and the metadata's sha256: replacing either ``model.json`` or the weights
    gives another cache folder."""
    meta = checkpoint.with_suffix(".json")
    return hashlib.sha256(f"{sha256_file(checkpoint)} {sha256_file(meta)}".encode()).hexdigest()


def _artifact(cache: Path, checkpoint: Path, backend: str, precision: str, calib: list[np.ndarray],
              calib_key: str, log, source: str) -> Path:
    """Build the artifact for (backend, precision) unless the cache already has it.

    INT8 artifacts are named after the calibration set and the quantization recipe
    too (``calib_key``) and, on CPUs, the weight range, so a different calibration
    or a changed quantizer never reuses a stale INT8 model.
    """
    from edge_fer.build.run import build_intel_float
    from edge_fer.export.onnx_export import export_checkpoint
    from edge_fer.quantize.run import quantize

    onnx_fp32 = cache / "fernet-fp32.onnx"

    def export() -> None:
        log("export -> ONNX fp32")
        export_checkpoint(load_checkpoint(checkpoint), onnx_fp32, calib[:100])

    _cached(onnx_fp32, source, export)
    if backend == "onnxruntime" and precision == "fp32":
        return onnx_fp32
    if backend == "tensorrt":
        return _engine(cache, onnx_fp32, precision, calib, calib_key, log, key=source)
    target = {"onnxruntime": "cpu", "openvino": "intel"}[backend]
    if weight_range(target, None)[0]:  # CPU INT8 also depends on the weight range this host's CPU calls for
        calib_key += "-w7"
    if backend == "onnxruntime":
        path = cache / f"fernet-{precision}-{calib_key}.onnx"

        def ort_int8() -> None:
            log(f"quantize -> ONNX {precision}")
            if precision == "int8-naive":
                _naive_ort_int8(onnx_fp32, path, calib)
            else:
                quantize(onnx_fp32, path, calib, target="cpu")

        return _cached(path, source, ort_int8)
    if precision == "int8":
        path = cache / f"fernet-int8-openvino-{calib_key}.xml"  # its OUT.json must not clash with the ORT one

        def nncf_int8() -> None:
            log("quantize -> OpenVINO int8 (NNCF)")
            quantize(onnx_fp32, path, calib, target="intel")

        return _cached(path, source, nncf_int8)
    path = cache / "fernet-fp32.xml"  # bf16/fp16 are compile-time choices on the same fp32 IR

    def ir() -> None:
        log("build -> OpenVINO IR fp32")
        build_intel_float(onnx_fp32, path)

    return _cached(path, source, ir)


def _engine(cache: Path, onnx_fp32: Path, precision: str, calib: list[np.ndarray], calib_key: str, log,
            key: str) -> Path:
    """A TensorRT engine built here (fp16 from the float ONNX, int8 from the jetson QDQ ONNX)."""
    from edge_fer.build.run import build_jetson
    from edge_fer.build.tensorrt import EngineSettings
    from edge_fer.quantize.run import quantize

    source, path = onnx_fp32, cache / "fernet-fp16.engine"
    if precision == "int8":
        source, path = cache / f"fernet-int8-tensorrt-{calib_key}.onnx", cache / f"fernet-int8-{calib_key}.engine"
        qdq = source

        def jetson_int8() -> None:
            log("quantize -> TensorRT QDQ ONNX")
            quantize(onnx_fp32, qdq, calib, target="jetson")

        _cached(qdq, key, jetson_int8)

    def engine() -> None:
        log(f"build -> TensorRT {precision} engine")
        build_jetson(source, path, EngineSettings(precision=precision, max_batch=ENGINE_MAX_BATCH), log=log)

    return _cached(path, key, engine)


def _open(path: Path, backend: str, precision: str, threads: int | None, rebuild) -> Runner:
    """Open a cached artifact; an engine built on another GPU or TensorRT is rebuilt once, not reported stale."""
    run_precision = precision if backend == "openvino" and precision != "int8" else None
    try:
        return open_runner(path, precision=run_precision, threads=threads)
    except EdgeFerError as e:
        if backend != "tensorrt" or "rebuild" not in str(e):
            raise
        path.unlink()
        return open_runner(rebuild(), threads=threads)


def _naive_ort_int8(onnx_fp32: Path, out: Path, calib: list[np.ndarray]) -> None:
    """The naive baseline: ``quantize_static`` with every option left at its default."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    from edge_fer.artifacts.atomic import atomic_path
    from edge_fer.backends.onnxruntime_backend import OrtRunner
    from edge_fer.data.preprocessing import preprocess
    from edge_fer.export.onnx_export import set_metadata

    info = OrtRunner.open(onnx_fp32).info

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"images": preprocess([im], info.preprocessing)} for im in calib])

        def get_next(self):
            return next(self.items, None)

    import logging

    import onnx

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT's "please pre-process" advice on the root logger: noise beside the table
    try:
        with atomic_path(out) as tmp:
            quantize_static(str(onnx_fp32), str(tmp), Reader())
            proto = onnx.load(str(tmp))
            set_metadata(proto, {**info.to_strings(), "edge_fer.precision": "int8"})
            onnx.save_model(proto, str(tmp))
    finally:
        root.setLevel(level)


def _labelled(data: Path, classes: list[str]) -> tuple[list[np.ndarray], np.ndarray, SkipReport]:
    folder = scan_folder(data, classes)
    skips = SkipReport()
    images, kept = load_images(folder.paths, skips)
    return images, folder.labels[kept], skips


def run_bench(checkpoint: Path, opts: BenchOptions, console: Console) -> dict:
    """Build, time and compare; writes results.json, report.md and PNGs to ``opts.out``."""
    selected = select_rows(opts.device, opts.backends, opts.precisions)
    checkpoint = weights_path(checkpoint)
    ckpt_sha = sha256_file(checkpoint)
    key = cache_key(checkpoint)
    cache = opts.cache / key[:16]
    cache.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(checkpoint)
    labels = None
    if opts.data is not None:
        images, labels, skips = _labelled(opts.data, ckpt.classes)
        data_name = str(opts.data)
    else:
        images, skips, data_name = embedded_faces(), SkipReport(), EMBEDDED_NAME
    # Calibrate on a separate set (never on the images accuracy is measured on).
    calib, calib_desc = load_calibration(opts.calib, CALIB_SIZE, 0, SkipReport())
    if calib_desc["warning"]:
        console.print(f"[yellow]warning:[/] {calib_desc['warning']}")
    calib_key = (calib_desc["manifest_sha256"] or "embedded")[:12] + f"-r{RECIPE}"
    torch_device = "cuda" if opts.device == "jetson" and _cuda() else "cpu"
    runners: dict[str, Runner] = {}
    footprint: dict[str, dict] = {}
    runners["torch fp32"], footprint["torch fp32"] = _measured_open(
        checkpoint, partial(open_runner, checkpoint, device=torch_device, threads=opts.threads))
    for backend, precision in selected:
        def build(backend=backend, precision=precision) -> Path:
            return _artifact(cache, checkpoint, backend, precision, calib, calib_key, _log(console), key)

        path = build()
        name = f"{backend} {precision}"
        runners[name], footprint[name] = _measured_open(
            path, partial(_open, path, backend, precision, opts.threads, build))
    console.print(f"accuracy parity on {len(images)} images ({data_name})")
    logits = all_logits(runners, images, 32)
    reference = logits["torch fp32"]
    rows: dict[str, dict] = {}
    for name, runner in runners.items():
        # how an INT8 artifact was quantized (target, method) travels in its metadata: show it with the knobs
        quantized = {k: v for k, v in runner.info.extra.items() if k.startswith("quant_")}
        rows[name] = {"backend": runner.backend, "precision": runner.precision,
                      "settings": {**runner.settings, **quantized},
                      **footprint[name], **parity(reference, logits[name], labels, ckpt.classes)}
    spec = ckpt.preprocessing
    from edge_fer.data.preprocessing import preprocess

    power = TegraStats() if opts.device == "jetson" and TegraStats.available() else nullcontext()
    with Progress(console=console, transient=True) as progress, power as stats:
        for batch_size in opts.batches:
            task = progress.add_task(f"latency batch {batch_size}", total=None if opts.seconds else opts.iters)
            batch = preprocess([images[i % len(images)] for i in range(batch_size)], spec)
            lat = time_interleaved(runners, batch, opts.warmup, opts.iters, lambda task=task: progress.advance(task),
                                   opts.seconds)
            energy = measure_energy(runners, batch, opts.energy_seconds, stats) if stats else {}
            base = lat["torch fp32"].summary()["median_ms"]
            for name, result in lat.items():
                summary = result.summary()
                summary["speedup_vs_torch"] = base / summary["median_ms"]
                summary["times_ms"] = [round(t, 4) for t in result.times_ms]
                if name in energy:
                    summary["energy"] = energy[name]
                rows[name].setdefault("latency", []).append(summary)
    for row in rows.values():
        row["passed"], row["verdict"] = verdict(row, opts.max_drop, opts.min_agreement)
    recommendation = recommend(rows)
    results = {
        "edge_fer_version": __version__, "device": opts.device, "checkpoint": str(checkpoint),
        "checkpoint_sha256": ckpt_sha, "data": data_name, "n_images": len(images),
        "skipped_images": len(skips.skipped), "calibration": calib_desc, "gate": {"max_drop_pt": opts.max_drop,
                                                        "min_agreement": opts.min_agreement},
        "machine": {"platform": platform.platform(), **host.summary(), "peak_rss_mb": peak_rss_mb()},
        "rows": rows, "passed": all(r["passed"] for r in rows.values()), "recommendation": recommendation,
        "timing": {"warmup": opts.warmup, "iters": None if opts.seconds else opts.iters, "seconds": opts.seconds,
                   "interleaved": "random order per round (seed 0)"},
    }
    if opts.device == "jetson":
        from edge_fer.build.tensorrt import jetpack_release, l4t_release

        l4t = l4t_release()
        results["jetson"] = {**power_state(), "tegrastats": "sampled" if stats else "not found (no energy figures)",
                             "l4t": l4t, "jetpack": jetpack_release(l4t)}
    opts.out.mkdir(parents=True, exist_ok=True)
    clear_outputs(opts.out)
    write_json(opts.out / "results.json", results)
    write_text(opts.out / "report.md", report_markdown(results))
    _plots(results, ckpt.classes, opts.out)
    console.print(results_table(results, opts.wide))
    return results


def remote_args(opts: BenchOptions) -> list[str]:
    """The options a remote ``edge-fer bench`` gets unchanged (paths are the remote side's business)."""
    args = ["--device", opts.device, "--batch", ",".join(map(str, opts.batches)), "--warmup", str(opts.warmup),
            "--max-drop", str(opts.max_drop), "--min-agreement", str(opts.min_agreement),
            "--energy-seconds", str(opts.energy_seconds)]
    args += ["--seconds", str(opts.seconds)] if opts.seconds else ["--iters", str(opts.iters)]
    if opts.threads:
        args += ["--threads", str(opts.threads)]
    if opts.backends:
        args += ["--backends", ",".join(opts.backends)]
    if opts.precisions:
        args += ["--precisions", ",".join(opts.precisions)]
    return args


def run_bench_remote(checkpoint: Path, opts: BenchOptions, remote: Remote, console: Console) -> dict:
    """The same bench on ``remote`` (see :mod:`edge_fer.bench.remote`); results land in ``opts.out`` here."""
    select_rows(opts.device, opts.backends, opts.precisions)  # a typo fails here, not after the copy
    if opts.out.is_dir():
        clear_outputs(opts.out)
    results, _status = run_remote(remote, weights_path(checkpoint), remote_args(opts), opts.data, opts.calib,
                                  opts.out, _log(console))
    if "recommendation" not in results:  # an older edge-fer there
        results["recommendation"] = recommend(results["rows"])
        write_json(opts.out / "results.json", results)
    write_text(opts.out / "report.md", report_markdown(results))
    console.print(results_table(results, opts.wide))
    return results


def _log(console: Console):
    """Progress lines from the build/quantize steps, dimmed under the bench's own output."""
    return lambda message: console.print(f"[dim]{message}[/]")


def _measured_open(path: Path, open_fn) -> tuple[Runner, dict]:
    """The opened runner, with its artifact's size and the resident memory opening it added."""
    rss = current_rss_mb()
    runner = open_fn()
    return runner, {"model_bytes": artifact_bytes(path), "rss_open_mb": current_rss_mb() - rss}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _precision(name: str, row: dict) -> str:
    """The row's precision as asked (``int8-naive``), plus what the runtime really ran where that differs."""
    asked = name.split(" ", 1)[1]
    return asked if row["precision"] in asked else f"{asked} (ran {row['precision']})"


def _fmt(row: dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if key in row else "-"


BACKEND_LABELS = {"torch": "torch", "onnxruntime": "ORT", "openvino": "OpenVINO", "tensorrt": "TensorRT"}


def engine_label(name: str, row: dict) -> str:
    """Short, readable row name for the terminal: ``ORT int8-naive``, ``OpenVINO default→bf16``."""
    backend, asked = name.split(" ", 1)
    ran = "" if row["precision"] in asked else f"→{row['precision']}"
    return f"{BACKEND_LABELS.get(backend, backend)} {asked}{ran}"


def results_table(results: dict, wide: bool = False) -> Table:
    """The terminal table: at most 80 columns with the figures a user decides on; ``wide`` adds the rest."""
    if wide:
        return _wide_table(results)
    gate = results["gate"]
    table = Table(title=f"edge-fer bench --device {results['device']} ({results['n_images']} images)",
                  caption=f"median of interleaved calls; speed-up vs torch fp32 at the same batch; "
                          f"✗ misses the gate (drop <= {gate['max_drop_pt']} pt, agreement >= "
                          f"{gate['min_agreement']:.1%}); --wide or report.md for the rest",
                  caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column("engine", no_wrap=True)
    for col in ("batch", "median ms", "speed-up", "drop pt", "agreement"):
        table.add_column(col, justify="right")
    table.add_column("verdict")
    for name, row in results["rows"].items():
        fails = "" if row["passed"] else row["verdict"]  # verdict() names each failing figure
        drop = _fmt(row, "accuracy_drop_pt", "+.2f") + (" ✗" if "drop" in fails else "")
        agreement = f"{row['top1_agreement']:.1%}" + (" ✗" if "agreement" in fails else "")
        for lat in row.get("latency", []):
            table.add_row(engine_label(name, row), str(lat["batch"]), f"{lat['median_ms']:.2f}",
                          f"{lat['speedup_vs_torch']:.2f}x", drop, agreement,
                          "pass" if row["passed"] else "[bold red]FAIL[/]")
    return table


def _wide_table(results: dict) -> Table:
    table = Table(title=f"edge-fer bench --device {results['device']} ({results['n_images']} images)")
    for col in ("backend", "precision", "batch", "median ms", "p90 ms", "speed-up", "accuracy", "drop pt",
                "agreement", "max |dlogit|", "verdict"):
        table.add_column(col)
    for name, row in results["rows"].items():
        for lat in row.get("latency", []):
            table.add_row(name.split()[0], _precision(name, row), str(lat["batch"]), f"{lat['median_ms']:.2f}",
                          f"{lat['p90_ms']:.2f}", f"{lat['speedup_vs_torch']:.2f}x", _fmt(row, "accuracy", ".2%"),
                          _fmt(row, "accuracy_drop_pt", "+.2f"), f"{row['top1_agreement']:.2%}",
                          f"{row['max_abs_logit_diff']:.3f}", "pass" if row["passed"] else row["verdict"])
    return table


def recommendation_line(results: dict) -> str:
    """One sentence naming the engine to ship, for the end of the bench's output."""
    rec, rows, gate = results["recommendation"], results["rows"], results["gate"]
    label = engine_label(rec["row"], rows[rec["row"]])
    if rec["row"] == "torch fp32":
        return (f"recommendation: {label}: no converted engine is faster and within the gate "
                f"(drop <= {gate['max_drop_pt']} pt, agreement >= {gate['min_agreement']:.1%})")
    drop = f", drop {rec['accuracy_drop_pt']:+.2f} pt" if "accuracy_drop_pt" in rec else ""
    others = [f"batch {b}: {engine_label(n, rows[n])}" for b, n in rec["by_batch"].items() if n != rec["row"]]
    return (f"recommendation: {label}, the fastest engine within the gate: {rec['median_ms']:.2f} ms at batch "
            f"{rec['batch']}, {rec['speedup_vs_torch']:.2f}x torch fp32, agreement {rec['top1_agreement']:.1%}"
            f"{drop}" + (f"; fastest within the gate at {', '.join(others)}" if others else ""))


def report_markdown(results: dict) -> str:
    lines = [f"# edge-fer bench: {results['device']}", "",
             f"* checkpoint `{results['checkpoint']}` (sha256 {results['checkpoint_sha256'][:16]}...)",
             f"* data: {results['data']} ({results['n_images']} images, {results['skipped_images']} skipped)",
             f"* INT8 calibration: {results['calibration']['source']} ({results['calibration']['n_images']} images)",
             f"* machine: {results['machine']['cpu']} ({', '.join(results['machine']['flags']) or 'no AVX-512/VNNI'})",
             f"* gate: drop <= {results['gate']['max_drop_pt']} pt, agreement >= "
             f"{results['gate']['min_agreement']:.2%}: **{'PASS' if results['passed'] else 'FAIL'}**",
             f"* {recommendation_line(results)}", "",
             "| backend | precision | batch | median ms | p90 ms | p99 ms | img/s | cold ms | speed-up vs torch | "
             "model MB | +RSS MB | accuracy | drop pt | agreement | max abs dlogit | KL | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        for lat in row.get("latency", []):
            lines.append(
                f"| {name.split()[0]} | {_precision(name, row)} | {lat['batch']} | {lat['median_ms']:.2f} | "
                f"{lat['p90_ms']:.2f} | {lat['p99_ms']:.2f} | {lat['throughput_ips']:.0f} | {lat['cold_ms']:.1f} | "
                f"{lat['speedup_vs_torch']:.2f}x | {row['model_bytes'] / 1e6:.1f} | {row['rss_open_mb']:.0f} | "
                f"{_fmt(row, 'accuracy', '.2%')} | "
                f"{_fmt(row, 'accuracy_drop_pt', '+.2f')} | {row['top1_agreement']:.2%} | "
                f"{row['max_abs_logit_diff']:.3f} | {row['kl_softmax']:.2e} | {row['verdict']} |")
    energy = [(name, lat) for name, row in results["rows"].items() for lat in row.get("latency", [])
              if "energy" in lat]
    if energy:
        jetson = results.get("jetson", {})
        lines += ["", f"Energy (tegrastats, each backend alone; nvpmodel {jetson.get('nvpmodel', '?')}, jetson_clocks "
                      f"{jetson.get('jetson_clocks', '?')}):", "",
                  "| backend | batch | board power mW | mJ per image | GPU load % | max temp C |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {lat['batch']} | {lat['energy'].get('power_mw', '-')} | "
                  f"{lat['energy'].get('energy_mj_per_image', '-')} | {lat['energy'].get('gpu_load_pct', '-')} | "
                  f"{lat['energy'].get('max_temp_c', '-')} |" for name, lat in energy]
    flips = [(name, row) for name, row in results["rows"].items() if "flipped_top2_gap_median" in row]
    if flips:
        gap = results["rows"]["torch fp32"]["float_top2_gap_median"]
        lines += ["", f"Where rows disagree with float, the float model was nearly tied: median top-1/top-2 logit gap "
                      f"of the flipped images vs {gap:.3f} over all images:", ""]
        lines += [f"* {name}: {row['flipped_top2_gap_median']:.3f} ({1 - row['top1_agreement']:.1%} flipped, mean "
                  f"abs dlogit {row['mean_abs_logit_diff']:.3f})" for name, row in flips]
    lines += ["", "Settings per row (threads, streams, inference precision read back from the runtime):", ""]
    lines += [f"* {name}: `{json.dumps(row['settings'], default=str)}`" for name, row in results["rows"].items()]
    timing = results.get("timing", {})
    rounds = f"{timing['seconds']} s of" if timing.get("seconds") else f"{timing.get('iters')}"
    lines += ["", f"Timing: {timing.get('warmup')} warm-up rounds, then {rounds} interleaved rounds per batch size "
              "(a fresh random order each round, so no backend always follows the same one)."]
    if "remote" in results:
        lines += [f"Ran on {results['remote']['host']} over SSH: `{results['remote']['command']}`"]
    return "\n".join(lines) + "\n"


def _plots(results: dict, classes: list[str], out: Path) -> None:
    import matplotlib.pyplot as plt

    from edge_fer.artifacts.plots import save_figure

    rows = results["rows"]
    names = list(rows)[::-1]  # boxplot rows go bottom-up: reversed, they read in the table's order
    batches = [lat["batch"] for lat in rows[names[0]]["latency"]]
    fig, axes = plt.subplots(1, len(batches), figsize=(3.2 + 3.8 * len(batches), 0.9 + 0.45 * len(names)),
                             sharey=True, squeeze=False, layout="constrained")
    for i, (ax, batch) in enumerate(zip(axes[0], batches, strict=True)):
        ax.boxplot([rows[n]["latency"][i]["times_ms"] for n in names], tick_labels=names, orientation="horizontal",
                   showfliers=False)
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("ms per call")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"edge-fer bench --device {results['device']}: latency per call (interleaved rounds)")
    save_figure(fig, out / "latency.png")
    int8 = [n for n in rows if "int8" in n and "confusion" in rows[n]]
    if "confusion" in rows["torch fp32"] and int8:
        plot_confusions_side_by_side(
            [("torch fp32", np.asarray(rows["torch fp32"]["confusion"]))] +
            [(n, np.asarray(rows[n]["confusion"])) for n in int8], classes, out / "confusion_float_vs_int8.png",
            f"Confusion matrices on {results['data']}, float vs INT8 (rows: recall per true class)")
        fig, ax = plt.subplots(figsize=(7, 3.8))
        width = 0.8 / len(int8)
        for i, n in enumerate(int8):
            deltas = [rows[n]["per_class_delta_pt"][c] for c in classes]
            ax.bar(np.arange(len(classes)) + i * width, deltas, width, label=n)
        ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes, rotation=30)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_ylabel("recall change vs float (pt)")
        ax.set_title(f"Per-class recall, INT8 vs float ({results['data']})")
        ax.legend()
        save_figure(fig, out / "per_class_delta.png")
