"""``edge-fer bench``: build (or reuse, :mod:`edge_fer.bench.cache`) the artifacts a device runs, then time and
compare them side by side."""

from __future__ import annotations

import platform
from contextlib import nullcontext
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from edge_fer import __version__
from edge_fer import platform as host
from edge_fer.artifacts.atomic import write_json, write_text
from edge_fer.artifacts.checkpoint import load_checkpoint, sha256_file, weights_path
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import artifact_bytes
from edge_fer.backends import open_runner
from edge_fer.backends.base import Runner
from edge_fer.backends.torch_backend import TorchRunner
from edge_fer.bench.cache import CacheFolder, CalibrationSet, artifact, cache_key
from edge_fer.bench.measure import all_logits, measure_energy, parity, recommend, time_interleaved, verdict
from edge_fer.bench.options import BenchOptions, gate_passed, select_rows
from edge_fer.bench.remote import Remote, run_remote
from edge_fer.bench.report import report_markdown, results_table, write_plots
from edge_fer.bench.tegrastats import TegraStats, power_state
from edge_fer.bench.user_int8 import mark_compared, open_user_int8, row_name, user_backend
from edge_fer.data.dataset import SkipReport, load_labelled
from edge_fer.data.faces import EMBEDDED_NAME, embedded_faces
from edge_fer.platform import current_rss_mb, peak_rss_mb
from edge_fer.quantize.calibration import load_calibration
from edge_fer.quantize.run import RECIPE

CALIB_SIZE = 512  # images sampled when --calib is a folder (seed 0), as edge-fer quantize does


# What a bench writes to --out; a reused folder loses the previous run's copies, so it describes one run.
OUTPUT_FILES = ("results.json", "report.md", "latency.png", "confusion_float_vs_int8.png", "per_class_delta.png")


def clear_outputs(out: Path) -> None:
    """Remove an earlier bench's files from ``out`` (only the names a bench writes: nothing else is touched)."""
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)


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


def run(checkpoint: Path, opts: BenchOptions, console: Console, remote: Remote | None = None) -> dict:
    """The bench stage: here, or on ``remote`` over SSH with the same options."""
    if remote is not None:
        return run_bench_remote(checkpoint, opts, remote, console)
    return run_bench(checkpoint, opts, console)


def run_bench(checkpoint: Path, opts: BenchOptions, console: Console) -> dict:
    """Build, time and compare; writes results.json, report.md and PNGs to ``opts.out``."""
    selected = select_rows(opts.device, opts.backends, opts.precisions)
    checkpoint = weights_path(checkpoint)
    ckpt_sha = sha256_file(checkpoint)
    key = cache_key(checkpoint, ckpt_sha)
    cache = CacheFolder(opts.cache / key[:16], key)
    cache.path.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(checkpoint, ckpt_sha)  # read and hashed once: export and the torch runner share it
    user = _user_int8(opts, checkpoint, ckpt_sha, ckpt.preprocessing)  # a wrong file fails before any build
    images, labels, skips, data_name = _accuracy_images(opts.data, ckpt.classes)
    # Calibrate on a separate set (never on the images accuracy is measured on).
    calib, calib_desc = load_calibration(opts.calib, CALIB_SIZE, 0, SkipReport())
    if calib_desc["warning"]:
        console.print(f"[yellow]warning:[/] {calib_desc['warning']}")
    calibration = CalibrationSet(calib, (calib_desc["manifest_sha256"] or "embedded")[:12] + f"-r{RECIPE}")
    torch_device = "cuda" if opts.device == "jetson" and _cuda() else "cpu"
    runners: dict[str, Runner] = {}
    footprint: dict[str, dict] = {}
    runners["torch fp32"], footprint["torch fp32"] = _measured_open(
        checkpoint, partial(TorchRunner.from_checkpoint, ckpt, device=torch_device, threads=opts.threads))
    for backend, precision in selected:
        def build(backend=backend, precision=precision) -> Path:
            return artifact(cache, ckpt, backend, precision, calibration, _log(console))

        path = build()
        name = f"{backend} {precision}"
        runners[name], footprint[name] = _measured_open(
            path, partial(_open, path, backend, precision, opts.threads, build))
    for name, (runner, fields) in user.items():  # after PTQ: the tables read PTQ, then the file
        runners[name], footprint[name] = runner, fields  # its footprint plus the file, for its row
    console.print(f"accuracy parity on {len(images)} images ({data_name})")
    rows = _parity_rows(runners, footprint, images, labels, ckpt.classes)
    mark_compared(rows)
    sampled = _time_rows(runners, rows, images, ckpt.preprocessing, opts, console)
    for row in rows.values():
        row["passed"], row["verdict"] = verdict(row, opts.max_drop, opts.min_agreement)
    recommendation = recommend(rows)
    results = {
        "edge_fer_version": __version__, "device": opts.device, "checkpoint": str(checkpoint),
        "checkpoint_sha256": ckpt_sha, "data": data_name, "n_images": len(images),
        "skipped_images": len(skips.skipped), "calibration": calib_desc, "gate": {"max_drop_pt": opts.max_drop,
                                                        "min_agreement": opts.min_agreement},
        "machine": {"platform": platform.platform(), **host.summary(), "peak_rss_mb": peak_rss_mb()},
        "rows": rows, "passed": gate_passed(rows), "recommendation": recommendation,
        "timing": {"warmup": opts.warmup, "iters": None if opts.seconds else opts.iters, "seconds": opts.seconds,
                   "interleaved": "random order per round (seed 0)"},
    }
    if opts.device == "jetson":
        from edge_fer.platform import jetpack_release, l4t_release

        l4t = l4t_release()
        results["jetson"] = {**power_state(), "tegrastats": "sampled" if sampled else "not found (no energy figures)",
                             "l4t": l4t, "jetpack": jetpack_release(l4t)}
    opts.out.mkdir(parents=True, exist_ok=True)
    clear_outputs(opts.out)
    write_json(opts.out / "results.json", results)
    write_text(opts.out / "report.md", report_markdown(results))
    write_plots(results, ckpt.classes, opts.out)
    console.print(results_table(results, opts.wide))
    return results


def _user_int8(opts: BenchOptions, checkpoint: Path, ckpt_sha: str, preprocessing) -> dict[str, tuple[Runner, dict]]:
    """``--int8`` files opened (and checked) with their footprint and file (numbered for the terminal's short
    labels), by row name (:mod:`edge_fer.bench.user_int8`)."""
    user: dict[str, tuple[Runner, dict]] = {}
    for number, path in enumerate(opts.int8, 1):
        name = row_name(user_backend(path, opts.device), path, set(user))
        runner, footprint = _measured_open(path, partial(open_user_int8, path, opts.device, checkpoint, ckpt_sha,
                                                         preprocessing, opts.threads))
        user[name] = runner, {**footprint, "file": str(path), "file_number": number}
    return user


def _accuracy_images(data: Path | None, classes: list[str]):
    """(images, labels or None, skips, name): the labelled ``--data`` folder, else the embedded faces."""
    if data is not None:
        skips = SkipReport()
        images, labels = load_labelled(data, classes, skips)
        return images, labels, skips, str(data)
    return embedded_faces(), None, SkipReport(), EMBEDDED_NAME


def _parity_rows(runners: dict[str, Runner], footprint: dict[str, dict], images, labels, classes) -> dict[str, dict]:
    """One row per runner: what ran, its footprint and its parity with torch fp32 on ``images``."""
    logits = all_logits(runners, images, 32)
    reference = logits["torch fp32"]
    rows: dict[str, dict] = {}
    for name, runner in runners.items():
        # how an INT8 artifact was quantized (target, method) travels in its metadata: show it with the knobs
        quantized = {k: v for k, v in runner.info.extra.items() if k.startswith("quant_")}
        rows[name] = {"backend": runner.backend, "precision": runner.precision,
                      "settings": {**runner.settings, **quantized},
                      **footprint[name], **parity(reference, logits[name], labels, classes)}
    return rows


def _time_rows(runners: dict[str, Runner], rows: dict[str, dict], images, spec, opts: BenchOptions,
               console: Console) -> bool:
    """Interleaved latency (and tegrastats energy) per batch size into ``rows``; True if power was sampled."""
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
    return bool(stats)


def run_bench_remote(checkpoint: Path, opts: BenchOptions, remote: Remote, console: Console) -> dict:
    """The same bench on ``remote`` (see :mod:`edge_fer.bench.remote`); results land in ``opts.out`` here."""
    select_rows(opts.device, opts.backends, opts.precisions)  # a typo fails here, not after the copy
    if opts.int8:
        raise EdgeFerError("--int8 benches a file here only; drop --host, or copy the file there and run "
                           "edge-fer bench --int8 on that machine")
    if opts.out.is_dir():
        clear_outputs(opts.out)
    results, _status = run_remote(remote, weights_path(checkpoint), opts, _log(console))
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


