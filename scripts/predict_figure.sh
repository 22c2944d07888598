#!/usr/bin/env bash
# README figure "results on real data": edge-fer predict on scikit-image's astronaut photo
# (NASA, public domain) with the shipped model, or with ENGINE=path/to/model.{safetensors,onnx,xml}.
# Usage: bash scripts/predict_figure.sh [OUT_PNG]   (default docs/figures/results_on_real_data.png)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT_PNG=${1:-docs/figures/results_on_real_data.png}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" - "$WORK/astronaut.png" <<'PYEOF'
import sys

import cv2
from skimage import data

cv2.imwrite(sys.argv[1], cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
PYEOF

engine_args=()
if [[ -n "${ENGINE:-}" ]]; then engine_args=(--engine "$ENGINE"); fi
"$PY" -m edge_fer.cli predict "$WORK/astronaut.png" ${engine_args[@]+"${engine_args[@]}"} --out "$WORK/out"
mkdir -p "$(dirname "$OUT_PNG")"
cp "$WORK/out/astronaut.png" "$OUT_PNG"
cp "$WORK/out/predictions.json" "${OUT_PNG%.png}.json"
echo "wrote $OUT_PNG and ${OUT_PNG%.png}.json"
