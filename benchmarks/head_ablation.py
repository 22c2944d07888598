"""Summarise the head/loss ablation runs (``benchmarks/head_ablation.sh``) as Markdown + JSON.

    python benchmarks/head_ablation.py runs/ablation -o benchmarks/results/NAME-head_ablation

Each run's best checkpoint (``model.json``, chosen on FER+ val) gives val accuracy, macro
recall and the logit-margin figures that decide how INT8 rounding flips predictions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_fer import platform as host


def summarise(run: Path) -> dict:
    meta = json.loads((run / "model.json").read_text())
    val = meta["metrics"]["val"]
    cfg = meta["training"]["config"]
    margins = val.get("margins", {})
    return {"run": run.name, "head": cfg["head"], "neck": cfg["neck"], "scale": cfg["scale"], "margin": cfg["margin"],
            "center_weight": cfg["center_weight"], "labels": cfg["labels"], "val_accuracy": val["accuracy"],
            "val_macro_recall": val["macro_recall"], "near_tie_share": margins.get("near_tie_share"),
            "median_logit_spread": margins.get("median_logit_spread"),
            "median_top2_gap": margins.get("median_top2_gap"), "best_epoch": meta["metrics"].get("best_epoch"),
            "wall_s": meta["training"]["wall_time_s"], "command": meta["training"]["command"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True, help="Output prefix (.json and .md are added)")
    args = parser.parse_args()
    rows = [summarise(r) for r in sorted(args.runs.iterdir()) if (r / "model.json").is_file()]
    cpu = f"{host.cpu_name()}, {'/'.join(host.summary()['flags'])}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"cpu": cpu, "rows": rows}, indent=2) + "\n")
    lines = [f"# Head / loss ablation (FER+ val, {cpu})", "",
             "Fixed schedule: `bash benchmarks/head_ablation.sh` (5 epochs at 64 px, first 1200 FER+ train images "
             "per class, seed 0, AdamW 2e-3, sqrt class weights). Val: all 2876 FER+ val images, majority labels; "
             "macro recall over classes with >= 20 val images.", "",
             "| run | head | neck | s | m | center λ | labels | val acc | macro recall | near-ties (gap<0.1) "
             "| median logit spread | median top-2 gap |",
             "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cosine = r["head"] == "cosine"
        lines.append(f"| {r['run']} | {r['head']} | {r['neck']} | {r['scale'] if cosine else '–'} | "
                     f"{r['margin'] if cosine else '–'} | {r['center_weight']} | {r['labels']} | "
                     f"{r['val_accuracy']:.1%} | {r['val_macro_recall']:.1%} | {r['near_tie_share']:.1%} | "
                     f"{r['median_logit_spread']:.2f} | {r['median_top2_gap']:.2f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
