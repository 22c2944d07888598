"""benchmarks/run.sh around a stand-in bench: what it records, the report path it prints, its exit status."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Stands in for "$PY -m edge_fer.cli bench ... --out DIR" (and "$PY -c" for the versions line): writes
# a bench's files and exits with $GATE (1: the parity gate failed); $GATE=2 and no files: an error.
STUB = """#!/usr/bin/env bash
if [[ "$1" == "-c" ]]; then echo "torch stub"; exit 0; fi
echo "$*" >> "$ARGS_LOG"
while [[ $# -gt 0 ]]; do [[ "$1" == "--out" ]] && out=$2; shift; done
if [[ "$GATE" == 2 ]]; then echo "error: no data" >&2; exit 2; fi
mkdir -p "$out"; echo '{}' > "$out/results.json"; echo "# report" > "$out/report.md"; echo png > "$out/latency.png"
echo "report: $out/report.md"; exit "$GATE"
"""


def _run(tmp: Path, gate: int, **env: str) -> subprocess.CompletedProcess:
    stub = tmp / "py"
    stub.write_text(STUB)
    stub.chmod(0o755)
    env = {**os.environ, "PY": str(stub), "RES": str(tmp / "res"), "WORK": str(tmp / "work"), "MACHINE": "m",
           "DEVICES": "cpu intel", "GATE": str(gate), "ARGS_LOG": str(tmp / "args.log"), **env}
    return subprocess.run(["bash", str(REPO / "benchmarks" / "run.sh")], env=env, capture_output=True, text=True)


def test_run_sh_records_keeps_its_report_and_exits_on_the_gate(tmp_path: Path) -> None:
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "m-cpu-confusion_float_vs_int8.png").write_text("a previous run's plot")
    failed = _run(tmp_path, gate=1)
    assert failed.returncode == 1, failed.stderr  # the gate failed: so does the script
    for line in failed.stdout.splitlines():
        if line.startswith("report: "):
            assert Path(line.removeprefix("report: ")).is_file()  # printed paths still exist afterwards
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == [
        "m-cpu-latency.png", "m-cpu.json", "m-cpu.md", "m-intel-latency.png", "m-intel.json", "m-intel.md"]
    assert "gate exit status 1" in (tmp_path / "res" / "m-cpu.md").read_text()
    assert "took 0 min" in failed.stdout

    assert _run(tmp_path, gate=0).returncode == 0
    error = _run(tmp_path, gate=2)  # no results: nothing stale is recorded, the error status comes through
    assert error.returncode == 2 and "wrote no results" in error.stderr


def test_run_sh_benches_a_devices_int8_file_beside_ptq(tmp_path: Path) -> None:
    """``INT8_cpu=FILE`` adds ``--int8 FILE`` to the cpu bench only, and the recording names it."""
    (tmp_path / "res").mkdir()
    assert _run(tmp_path, gate=0, INT8_cpu="qat/fernet-cpu-qat.onnx").returncode == 0
    cpu, intel = (tmp_path / "args.log").read_text().splitlines()
    assert cpu.endswith("--int8 qat/fernet-cpu-qat.onnx") and "--int8" not in intel
    recorded = (tmp_path / "res" / "m-cpu.md").read_text()
    assert "with: INT8_cpu=qat/fernet-cpu-qat.onnx bash benchmarks/run.sh" in recorded
    assert "with: bash benchmarks/run.sh" in (tmp_path / "res" / "m-intel.md").read_text()
