"""What a bench shows and writes: the terminal table, the recommendation line, report.md and the plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from edge_fer.artifacts.plots import plot_confusions_side_by_side
from edge_fer.bench.options import GATED, row_role


def _precision(name: str, row: dict) -> str:
    """The row's precision as asked (``int8-naive``), plus what the runtime really ran where that differs."""
    asked = name.split(" ", 1)[1]
    return asked if row["precision"] in asked else f"{asked} (ran {row['precision']})"


def _reasons(name: str, row: dict) -> str:
    """The row's verdict (``ok`` or the failing figures), marked where the fail of a row shown for comparison
    (:func:`~edge_fer.bench.options.row_role`) gates nothing."""
    role = row_role(name, row)
    return row["verdict"] + (f" ({role}, not gated)" if role != GATED and not row["passed"] else "")


def _terminal_verdict(name: str, row: dict) -> str:
    role = row_role(name, row)
    return "pass" if row["passed"] else role if role != GATED else "[bold red]FAIL[/]"


def _fmt(row: dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if key in row else "-"


BACKEND_LABELS = {"torch": "torch", "onnxruntime": "ORT", "openvino": "OpenVINO", "tensorrt": "TensorRT"}


def engine_label(name: str, row: dict) -> str:
    """Short, readable row name for the terminal: ``ORT int8-naive``, ``OpenVINO default→bf16``; an ``--int8`` file's
    row is ``ORT int8 #1``, its file named under the table (report.md and ``--wide`` give the whole name)."""
    backend, asked = name.split(" ", 1)
    if "file_number" in row:
        return f"{BACKEND_LABELS.get(backend, backend)} int8 #{row['file_number']}"
    ran = "" if row["precision"] in asked else f"→{row['precision']}"
    return f"{BACKEND_LABELS.get(backend, backend)} {asked}{ran}"


def _files_note(rows: dict[str, dict]) -> str:
    files = [f"#{row['file_number']}: --int8 {row['file']}" for row in rows.values() if "file_number" in row]
    return "".join(f"\n{f}" for f in files)


def results_table(results: dict, wide: bool = False) -> Table:
    """The terminal table: at most 80 columns with the figures a user decides on; ``wide`` adds the rest."""
    if wide:
        return _wide_table(results)
    gate = results["gate"]
    table = Table(title=f"edge-fer bench --device {results['device']} ({results['n_images']} images)",
                  caption=f"median of interleaved calls; speed-up vs torch fp32 at the same batch; "
                          f"✗ misses the gate (drop <= {gate['max_drop_pt']} pt, agreement >= "
                          f"{gate['min_agreement']:.1%}); baseline: a stock recipe, compared: bench's PTQ "
                          "beside --int8, neither gated; --wide or report.md for the rest"
                          + _files_note(results["rows"]),
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
                          _terminal_verdict(name, row))
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
                          f"{row['max_abs_logit_diff']:.3f}", "pass" if row["passed"] else _reasons(name, row))
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


def _ungated_note(rows: dict[str, dict]) -> str:
    shown = [f"{name}: {row_role(name, row)}" for name, row in rows.items() if row_role(name, row) != GATED]
    return f" ({', '.join(shown)}; shown but not gated)" if shown else ""


def report_markdown(results: dict) -> str:
    lines = [f"# edge-fer bench: {results['device']}", "",
             f"* checkpoint `{results['checkpoint']}` (sha256 {results['checkpoint_sha256'][:16]}...)",
             f"* data: {results['data']} ({results['n_images']} images, {results['skipped_images']} skipped)",
             f"* INT8 calibration: {results['calibration']['source']} ({results['calibration']['n_images']} images)",
             f"* machine: {results['machine']['cpu']} ({', '.join(results['machine']['flags']) or 'no AVX-512/VNNI'})",
             f"* gate: drop <= {results['gate']['max_drop_pt']} pt, agreement >= "
             f"{results['gate']['min_agreement']:.2%}: **{'PASS' if results['passed'] else 'FAIL'}**"
             + _ungated_note(results["rows"]),
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
                f"{row['max_abs_logit_diff']:.3f} | {row['kl_softmax']:.2e} | {_reasons(name, row)} |")
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
    lines += [f"* {name}: `{json.dumps(row['settings'], default=str)}`"
              + (f" (--int8 `{row['file']}`)" if "file" in row else "") for name, row in results["rows"].items()]
    timing = results.get("timing", {})
    rounds = f"{timing['seconds']} s of" if timing.get("seconds") else f"{timing.get('iters')}"
    lines += ["", f"Timing: {timing.get('warmup')} warm-up rounds, then {rounds} interleaved rounds per batch size "
              "(a fresh random order each round, so no backend always follows the same one)."]
    if "remote" in results:
        lines += [f"Ran on {results['remote']['host']} over SSH: `{results['remote']['command']}`"]
    return "\n".join(lines) + "\n"


def write_plots(results: dict, classes: list[str], out: Path) -> None:
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
