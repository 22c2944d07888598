#!/usr/bin/env bash
# Reproduce the recorded results: the reference model on FER+ test, every CPU-side backend,
# side by side in one process per device. Writes benchmarks/results/<machine>-<device>.{md,json,png}.
#   bash benchmarks/run.sh            (needs ../shared/data/ferplus; ~4-5 min on 2 cores once the INT8 artifacts
#                                      are cached in .edge-fer-cache, longer the first time; it prints its own time)
#   DEVICES=cpu bash benchmarks/run.sh   (one device only)
#   INT8_cpu=FILE DEVICES=cpu bash benchmarks/run.sh   (also bench your INT8 FILE, e.g. quantize --qat's, beside PTQ:
#                                      bench --int8; it is gated and PTQ's row is shown as "compared")
# Exits 1 when a device's parity gate failed (the results are recorded either way), >1 on an error.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/ferplus/test}
CALIB=${CALIB:-calibration/ferplus-train-512.txt}  # INT8 calibration: 512 seeded, stratified train images, pinned
MACHINE=${MACHINE:-$(nproc)core-$(grep -q avx512_vnni /proc/cpuinfo && echo avx512vnni || echo avx2)}
RES=${RES:-benchmarks/results}
PY=${PY:-.venv/bin/python}
WORK=${WORK:-bench-out/run}  # each device's full bench output stays here (the printed report path stays valid)
mkdir -p "$RES"
start=$SECONDS
worst=0
for device in ${DEVICES:-cpu intel}; do
  out="$WORK/$MACHINE-$device"
  rm -rf "$out"  # a bench that stops early must not leave an earlier run's results to be recorded
  status=0
  int8_var="INT8_$device"
  int8=(); if [[ -n "${!int8_var:-}" ]]; then int8=(--int8 "${!int8_var}"); fi
  "$PY" -m edge_fer.cli bench --device "$device" --data "$DATA" --threads 2 --batch 1,8 --iters 200 --warmup 20 \
    --calib "$CALIB" --max-drop 0.5 --min-agreement 0.99 --out "$out" --cache .edge-fer-cache "${int8[@]}" || status=$?
  if [[ ! -f "$out/results.json" ]]; then echo "bench --device $device wrote no results (exit $status)" >&2; exit "$status"; fi
  if (( status > worst )); then worst=$status; fi
  rm -f "$RES/$MACHINE-$device"-*.png  # this device's previous plots: the recorded files describe one run
  cp "$out/report.md" "$RES/$MACHINE-$device.md"
  cp "$out/results.json" "$RES/$MACHINE-$device.json"
  for png in "$out"/*.png; do cp "$png" "$RES/$MACHINE-$device-$(basename "$png")"; done
  { echo; echo "Recorded $(date -u +%F) with: ${int8[*]:+$int8_var=${int8[1]} }bash benchmarks/run.sh (gate exit status $status)"
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "CPU flags: $(grep -o -w -E 'avx512_vnni|avx512_bf16|avx512f|amx_int8|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    echo "Versions: $("$PY" -c 'import torch,onnxruntime,openvino,nncf;print("torch",torch.__version__,"onnxruntime",onnxruntime.__version__,"openvino",openvino.__version__,"nncf",nncf.__version__)')"
  } >> "$RES/$MACHINE-$device.md"
  echo "recorded $RES/$MACHINE-$device.{md,json} and its plots (full output: $out/)"
done
echo "benchmarks/run.sh took $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s; gate exit status $worst"
exit "$worst"
