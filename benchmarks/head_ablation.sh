#!/usr/bin/env bash
# Head / loss ablation on one fixed short schedule (issue: reference model v2).
# Same seed, same data (FER+ train, first 1200 images per class), 5 epochs at 64 px, AdamW 2e-3, sqrt weights;
# scored on all of FER+ val (majority labels). Summary: python benchmarks/head_ablation.py runs/ablation
#   bash benchmarks/head_ablation.sh [DATA] [OUT]
set -euo pipefail
DATA=${1:-../shared/data/ferplus}
OUT=${2:-runs/ablation}
common=(--data "$DATA" --schedule 64:5 --img-size 64 --limit-per-class 1200 --seed 0)
run() { local name=$1; shift; [ -f "$OUT/$name/model.json" ] || edge-fer train "${common[@]}" --out "$OUT/$name" "$@"; }
run A-cosine-s30-m035-center       --head cosine --neck none --scale 30 --margin 0.35 --center-weight 0.1
run B-bnneck-cosine-s30-m035-center --head cosine --neck bn   --scale 30 --margin 0.35 --center-weight 0.1
run C-bnneck-cosine-s16-m010-center --head cosine --neck bn   --scale 16 --margin 0.10 --center-weight 0.1
run D-bnneck-linear-center         --head linear --neck bn   --center-weight 0.1
run E-bnneck-linear-softmax        --head linear --neck bn   --center-weight 0
run F-bnneck-linear-center-votes   --head linear --neck bn   --center-weight 0.1 --labels votes
