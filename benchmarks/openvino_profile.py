"""Cross-check the OpenVINO rows of the recorded bench with ``benchmark_app`` and profile them (``-pc``).

For the reference model's fp32 and INT8 IRs in the bench cache: median latency
from ``benchmark_app`` (batch 1, one stream, 2 threads, f32 inference
precision) beside ``edge-fer bench``'s median for the same IR, plus the time per
layer type from benchmark_app's average performance counters.  Writes
``benchmarks/results/<machine>-openvino-profile.md`` (+ .json).

    .venv/bin/python benchmarks/openvino_profile.py   # after bash benchmarks/run.sh
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECONDS = 15


def run_benchmark_app(xml: Path, report: Path) -> float:
    """Median latency (ms) that benchmark_app reports; its average counters go to ``report``."""
    cmd = [str(Path(sys.executable).parent / "benchmark_app"), "-m", str(xml), "-d", "CPU",
           "-hint", "none", "-nstreams", "1", "-nthreads", "2", "-t", str(SECONDS), "-infer_precision", "f32",
           "-shape", "[1,3,224,224]",
           "-report_type", "average_counters", "-report_folder", str(report)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Median:\s+([\d.]+) ms", out).group(1))


def layer_types(report: Path) -> dict[str, float]:
    """Milliseconds per execution type (e.g. ``jit_avx2_I8``) summed over layers, from the counters CSV."""
    per_type: dict[str, float] = defaultdict(float)
    with open(report / "benchmark_average_counters_report.csv") as f:
        for row in csv.reader(f, delimiter=";"):
            if len(row) >= 5 and row[1].endswith("EXECUTED"):
                try:
                    per_type[f"{row[2]} ({row[3]})"] += float(row[4])
                except ValueError:
                    continue
    return dict(sorted(per_type.items(), key=lambda kv: -kv[1]))


def main() -> None:
    machine = sys.argv[1] if len(sys.argv) > 1 else None
    bench_json = sorted(RESULTS.glob(f"{machine or '*'}-intel.json"))[-1]
    machine = bench_json.name.removesuffix("-intel.json")
    bench = json.loads(bench_json.read_text())
    cache = ROOT / ".edge-fer-cache" / bench["checkpoint_sha256"][:16]
    int8 = cache.glob(f"fernet-int8-openvino-{bench['calibration']['manifest_sha256'][:12]}*.xml")
    irs = {"openvino fp32": cache / "fernet-fp32.xml",
           "openvino int8": max(int8, key=lambda p: p.stat().st_mtime)}  # the one the recorded bench built
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, xml in irs.items():
            report = Path(tmp) / name.replace(" ", "-")
            report.mkdir()
            median = run_benchmark_app(xml, report)
            ours = next(lat["median_ms"] for lat in bench["rows"][name]["latency"] if lat["batch"] == 1)
            rows[name] = {"ir": xml.name, "benchmark_app_median_ms": median, "edge_fer_bench_median_ms": ours,
                          "ratio": ours / median, "ms_by_layer_type": layer_types(report)}
    (RESULTS / f"{machine}-openvino-profile.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"# OpenVINO cross-check and profile ({machine})", "",
             f"`benchmark_app` (batch 1, 1 stream, 2 threads, -infer_precision f32, {SECONDS} s) on the "
             f"IRs that `edge-fer bench --device intel` timed ({bench_json.name}). The bench interleaves all backends, "
             "benchmark_app runs one alone, so expect the bench to be a little slower.", "",
             "| row | benchmark_app median ms | edge-fer bench median ms | bench / benchmark_app |",
             "|---|---|---|---|"]
    lines += [f"| {n} | {r['benchmark_app_median_ms']:.2f} | {r['edge_fer_bench_median_ms']:.2f} | {r['ratio']:.2f} |"
              for n, r in rows.items()]
    for name, r in rows.items():
        total = sum(r["ms_by_layer_type"].values())
        lines += ["", f"## {name}: time by layer type (average counters, {total:.2f} ms summed)", "",
                  "| layer type (kernel) | ms | share |", "|---|---|---|"]
        lines += [f"| {t} | {ms:.3f} | {ms / total:.0%} |" for t, ms in list(r["ms_by_layer_type"].items())[:12]]
    lines += ["", "Reproduce: `bash benchmarks/run.sh && .venv/bin/python benchmarks/openvino_profile.py`"]
    (RESULTS / f"{machine}-openvino-profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
