"""``edge-fer bench``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_fer.cli.app import app, checkpoint_path, console, finite, names, positive, user_errors


@app.command()
@user_errors
def bench(
    checkpoint: Annotated[Path | None, typer.Argument(help="Checkpoint (default: the shipped reference model)")] = None,
    device: Annotated[str, typer.Option(help="cpu (ORT fp32/int8 + torch) | intel (OpenVINO fp32/bf16/int8 + ORT) | "
                                             "jetson (TensorRT fp16/int8 + torch CUDA)")] = "cpu",
    data: Annotated[Path | None, typer.Option(help="Labelled folder for accuracy (default: embedded LFW faces, "
                                                   "agreement only)")] = None,
    backends: Annotated[str | None, typer.Option(help="Only these backends, comma-separated (torch always runs)")
                        ] = None,
    precisions: Annotated[str | None, typer.Option(help="Only these precisions, comma-separated, e.g. int8")] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated")] = "1",
    warmup: Annotated[int, typer.Option(min=0, help="Untimed rounds per backend")] = 20,
    iters: Annotated[int, typer.Option(min=1, help="Timed rounds per backend (interleaved)")] = 200,
    seconds: Annotated[float | None, typer.Option(
        callback=positive, help="Time rounds for this long instead of --iters")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Threads per runtime (default: runtime's choice)")] = None,
    max_drop: Annotated[float, typer.Option(
        callback=finite, min=0.0, help="Gate: max accuracy drop vs float, points")] = 1.0,
    min_agreement: Annotated[float, typer.Option(
        callback=finite, min=0.0, max=1.0, help="Gate: min top-1 agreement with float")] = 0.99,
    out: Annotated[Path, typer.Option("--out", "-o", help="results.json, report.md and PNGs go here")] = Path(
        "bench-out"),
    cache: Annotated[Path, typer.Option(help="Artifact cache (keyed by checkpoint sha256)")] = Path(
        ".edge-fer-cache"),
    calib: Annotated[str | None, typer.Option(
        help="INT8 calibration: a folder (512 sampled, seed 0) or a manifest (default: embedded faces)")] = None,
    energy_seconds: Annotated[float, typer.Option(
        callback=finite, min=0.0,
        help="jetson: seconds per backend and batch size of tegrastats power sampling")] = 3.0,
    host: Annotated[str | None, typer.Option(help="Run there over SSH: user@host[:port] (edge-fer installed there)")
                    ] = None,
    ssh_option: Annotated[list[str] | None, typer.Option(help="ssh/scp -o KEY=VALUE (repeat)")] = None,
    remote_dir: Annotated[str, typer.Option(help="--host: working folder there")] = "edge-fer-bench",
    remote_edge_fer: Annotated[str, typer.Option(help="--host: the edge-fer command there")] = "edge-fer",
    img_size: Annotated[str | None, typer.Option(
        help="Bench the checkpoint at these input sizes, e.g. 64,96,112,224 (same weights): one report per size "
             "under --out plus frontier.{json,md,png}, accuracy vs latency")] = None,
    int8: Annotated[list[Path] | None, typer.Option(
        metavar="FILE", help="Also bench this INT8 file (e.g. quantize --qat's; made from CHECKPOINT for --device) "
                             "beside PTQ in the same run; it is gated and PTQ's row becomes 'compared' (repeat for "
                             "several)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print results.json to stdout")] = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column in the terminal table (p90, accuracy, "
                                                      "max |dlogit|, full verdicts); report.md always has them")
                    ] = False,
) -> None:
    """Latency and accuracy parity of every backend vs the float model; exit 1 when the gate fails."""
    from edge_fer.bench.remote import Remote

    # a bad --host or --remote-dir fails before anything heavy is imported or read
    remote = Remote.parse(host, ssh_option or [], remote_dir, remote_edge_fer) if host else None
    from edge_fer.bench.options import BenchOptions, parse_batches
    from edge_fer.bench.run import run

    opts = BenchOptions(device=device, data=data, batches=parse_batches(batch), warmup=warmup, iters=iters,
                        threads=threads, max_drop=max_drop, min_agreement=min_agreement, cache=cache, out=out,
                        calib=calib, backends=names(backends), precisions=names(precisions), seconds=seconds,
                        energy_seconds=energy_seconds, wide=wide, int8=tuple(int8 or ()))
    if img_size is not None:
        return _bench_sizes(checkpoint_path(checkpoint), opts, img_size, remote)
    _print_results(run(checkpoint_path(checkpoint), opts, console, remote), out, json_out)


def _bench_sizes(checkpoint: Path, opts, sizes: str, remote) -> None:
    """``--img-size``: a bench per size (each prints its table), then the frontier; exit 1 when a size's gate failed."""
    from edge_fer.bench.sizes import run_sizes

    frontier = run_sizes(checkpoint, opts, sizes, console, remote)
    console.print(f"frontier: {opts.out / 'frontier.md'} and {opts.out / 'frontier.png'}", highlight=False)
    if not frontier["passed"]:
        console.print("[bold red]error:[/] parity gate failed at one or more sizes (see each size's report.md)")
        raise typer.Exit(1)


def _print_results(results: dict, out: Path, json_out: bool) -> None:
    """The report path, the failed gate (if any) and the recommendation last; exit 1 when the gate failed."""
    from edge_fer.bench.options import gate_failures
    from edge_fer.bench.report import recommendation_line

    if json_out:
        import json

        typer.echo(json.dumps(results, indent=2))
    console.print(f"report: {out / 'report.md'}", highlight=False)
    if not results["passed"]:
        failed = [f"{n}: {r['verdict']}" for n, r in gate_failures(results["rows"]).items()]
        console.print("[bold red]error:[/] parity gate failed: " + "; ".join(failed), highlight=False, soft_wrap=True)
    console.print(recommendation_line(results), highlight=False, soft_wrap=True)  # the answer comes last
    if not results["passed"]:
        raise typer.Exit(1)
