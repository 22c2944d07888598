#!/usr/bin/env bash
# README figure "results on real data": edge-fer predict on scikit-image's astronaut photo
# (NASA, public domain) with the shipped model, or with ENGINE=path/to/model.{safetensors,onnx,xml}.
# Usage: bash scripts/predict_figure.sh [OUT_PNG]   (default docs/figures/results_on_real_data.png)
# The JSON beside the PNG is tracked: it names the photo and the engine without this machine's paths.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT_PNG=${1:-docs/figures/results_on_real_data.png}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" scripts/sample_inputs.py "$WORK" >/dev/null
engine_args=()
if [[ -n "${ENGINE:-}" ]]; then engine_args=(--engine "$ENGINE"); fi
"$PY" -m edge_fer.cli predict "$WORK/astronaut.png" ${engine_args[@]+"${engine_args[@]}"} --out "$WORK/out"
mkdir -p "$(dirname "$OUT_PNG")"
cp "$WORK/out/astronaut.png" "$OUT_PNG"
"$PY" - "$WORK/out/predictions.json" "${OUT_PNG%.png}.json" <<'PYEOF'
"""Copy predictions.json with portable paths: the engine relative to the repository, the photo by name."""
import json
import os
import sys

from edge_fer.artifacts.atomic import write_json

report = json.loads(open(sys.argv[1]).read())
engine = os.path.abspath(report["engine"])
report["engine"] = os.path.relpath(engine) if engine.startswith(os.getcwd() + os.sep) else os.path.basename(engine)
for item in report["results"] + report["no_face"] + report.get("videos", []):
    item["file"] = os.path.basename(item["file"])
report["unreadable"]["files"] = [os.path.basename(f) for f in report["unreadable"]["files"]]
write_json(sys.argv[2], report)
PYEOF
echo "wrote $OUT_PNG and ${OUT_PNG%.png}.json"
