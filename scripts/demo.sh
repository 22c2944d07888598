#!/usr/bin/env bash
# `make demo`: the main job on the embedded default, on a fresh machine with no data.
# Reference model -> ONNX (verified against PyTorch on 100 real LFW faces) -> INT8.
set -euo pipefail
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
edge-fer info
edge-fer export -o "$OUT/fernet.onnx"
if edge-fer quantize --help >/dev/null 2>&1; then
  edge-fer quantize "$OUT/fernet.onnx" --target cpu -o "$OUT/fernet-int8.onnx"
fi
echo "demo artifacts in $OUT/"
