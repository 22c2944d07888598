#!/usr/bin/env bash
# `make demo`: the whole pipeline on the embedded default, on a fresh machine with no data:
# reference model -> ONNX (verified vs PyTorch on 100 real LFW faces) -> INT8 (cpu) ->
# OpenVINO INT8 IR (intel) + Jetson bundle -> bench (latency + float-vs-INT8 agreement, side by side).
set -euo pipefail
OUT=${OUT:-demo-out}
rm -rf "$OUT"
mkdir -p "$OUT"
edge-fer info
edge-fer export -o "$OUT/fernet.onnx"
edge-fer quantize "$OUT/fernet.onnx" --target cpu -o "$OUT/fernet-int8.onnx"
edge-fer build "$OUT/fernet.onnx" --target intel --precision int8 -o "$OUT/intel-int8"
edge-fer build "$OUT/fernet.onnx" --target jetson --precision fp16 --bundle "$OUT/jetson-bundle" --deepstream
# LFW crops are unlabelled faces, far from FER+: agreement only, with a loose smoke gate.
# The real gate (FER+ test, drop <= 0.5 pt, agreement >= 99%) is benchmarks/run.sh.
edge-fer bench --device intel --iters 100 --warmup 10 --min-agreement 0.8 --out "$OUT/bench" \
  --cache "$OUT/cache"
echo "demo artifacts in $OUT/; bench report: $OUT/bench/report.md"
# The closing sentence: what the run proved, from the bench's own results.json.
python - "$OUT/bench/results.json" <<'PYEOF'
import json
import sys

from edge_fer.bench.report import engine_label

res = json.load(open(sys.argv[1]))
rec, gate = res["recommendation"], res["gate"]
parity = (f"agreeing with the float model on {rec['top1_agreement']:.1%} of {res['n_images']} real faces "
          f"(gate >= {gate['min_agreement']:.0%})")
if rec["row"] == "torch fp32":
    print(f"Proven on this machine: every converted engine was slower than torch fp32 or missed the gate "
          f"(agreement >= {gate['min_agreement']:.0%} on {res['n_images']} real faces); see the report.")
else:
    print(f"Proven on this machine: {engine_label(rec['row'], res['rows'][rec['row']])} is the fastest engine within "
          f"the gate, {rec['speedup_vs_torch']:.1f}x torch fp32 at batch {rec['batch']} "
          f"({rec['median_ms']:.1f} ms per face), {parity}.")
PYEOF
