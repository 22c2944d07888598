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
# The real gate (FER+ test, drop <= 1 pt, agreement >= 98.5%) is benchmarks/run.sh.
edge-fer bench --device intel --iters 100 --warmup 10 --min-agreement 0.8 --out "$OUT/bench" \
  --cache "$OUT/cache"
echo "demo artifacts in $OUT/; bench report: $OUT/bench/report.md"
