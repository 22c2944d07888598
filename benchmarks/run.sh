#!/usr/bin/env bash
# Reproduce the recorded results: the reference model on FER+ test, every CPU-side backend,
# side by side in one process per device. Writes benchmarks/results/<machine>-<device>.{md,json,png}.
#   bash benchmarks/run.sh            (needs ../shared/data/ferplus; ~15 min on 2 cores)
#   DEVICES=cpu bash benchmarks/run.sh   (one device only)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/ferplus/test}
CALIB=${CALIB:-../shared/data/ferplus/train}  # INT8 calibration: 512 seeded, stratified train images
MACHINE=${MACHINE:-$(nproc)core-$(grep -q avx512_vnni /proc/cpuinfo && echo avx512vnni || echo avx2)}
RES=benchmarks/results
mkdir -p "$RES"
for device in ${DEVICES:-cpu intel}; do
  out=$(mktemp -d)
  status=0
  .venv/bin/edge-fer bench --device "$device" --data "$DATA" --threads 2 --batch 1,8 --iters 200 --warmup 20 \
    --calib "$CALIB" --max-drop 0.5 --min-agreement 0.99 --out "$out" --cache .edge-fer-cache || status=$?
  cp "$out/report.md" "$RES/$MACHINE-$device.md"
  cp "$out/results.json" "$RES/$MACHINE-$device.json"
  for png in "$out"/*.png; do cp "$png" "$RES/$MACHINE-$device-$(basename "$png")"; done
  { echo; echo "Recorded $(date -u +%F) with: bash benchmarks/run.sh (gate exit status $status)"
    echo "CPU flags: $(grep -o -w -E 'avx512_vnni|avx512_bf16|avx512f|amx_int8|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    echo "Versions: $(.venv/bin/python -c 'import torch,onnxruntime,openvino,nncf;print("torch",torch.__version__,"onnxruntime",onnxruntime.__version__,"openvino",openvino.__version__,"nncf",nncf.__version__)')"
  } >> "$RES/$MACHINE-$device.md"
  rm -rf "$out"
done
