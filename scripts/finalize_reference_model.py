"""Ship a finished training run as a model folder, record its test metrics, regenerate the model card.

    python scripts/finalize_reference_model.py runs/v2 fernet-ferplus [--bench results.json ...]
    python scripts/finalize_reference_model.py --card-only [--bench ...]

Evaluates on ../shared/data/ferplus/test (the card's headline figures) and
../shared/data/fer-mini/test (the figure CI re-checks), stores both in
model.json["metrics"], writes the test confusion matrix beside the weights and
regenerates edge_fer/models/README.md from every shipped model's model.json (plus INT8
latency from ``edge-fer bench`` results.json files), so the card cannot drift from
the checkpoints it describes.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from rich.console import Console

from edge_fer.artifacts.atomic import write_json, write_text
from edge_fer.artifacts.defaults import REFERENCE_MODEL
from edge_fer.train.evaluate import evaluate_checkpoint

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MODELS = REFERENCE_MODEL.parents[1]
ORDER = ("fernet-ferplus", "fernet-ferplus-224")  # the default first
ABLATION = sorted((REPO / "benchmarks" / "results").glob("*-head_ablation.md"))


def finalize(run: Path, name: str, console: Console) -> None:
    dest = MODELS / name
    # Before anything is copied: a run fine-tuned from the model it replaces reads its parent from dest.
    stages = lineage(run, json.loads((run / "model.json").read_text())["training"]["config"])
    dest.mkdir(parents=True, exist_ok=True)
    for file in ("model.safetensors", "model.json", "loss.png", "accuracy.png", "metrics.json"):
        if (run / file).is_file():
            shutil.copy2(run / file, dest / file)
    results = {}
    for key, folder in (("test", DATA / "ferplus" / "test"), ("fer_mini_test", DATA / "fer-mini" / "test")):
        out = dest / "eval" / key
        results[key] = evaluate_checkpoint(dest / "model.safetensors", folder, out, 128, console).to_dict()
        results[key]["data"] = str(folder.relative_to(REPO.parent))
    shutil.copy2(dest / "eval" / "test" / "confusion_matrix.png", dest / "confusion_matrix.png")
    shutil.rmtree(dest / "eval")
    meta = json.loads((dest / "model.json").read_text())
    meta["metrics"].update(results)
    if meta["architecture"].get("mirror_average"):
        meta["metrics"]["single_view"] = single_view(dest)
    meta["training"].update(stages)
    write_json(dest / "model.json", meta)
    console.print(f"{name}: test {results['test']['accuracy']:.4f} macro {results['test']['macro_recall']:.4f}")


def single_view(folder: Path) -> dict:
    """A mirror-averaging model's FER+ val and test figures with one view (same weights): the card's measure of
    what the second pass buys."""
    from dataclasses import replace

    from edge_fer.artifacts.checkpoint import load_checkpoint
    from edge_fer.backends.torch_backend import TorchRunner
    from edge_fer.data.dataset import SkipReport, load_labelled
    from edge_fer.model.fernet import FERNet
    from edge_fer.train.metrics import batched_logits, compute_metrics

    ckpt = load_checkpoint(folder / "model.safetensors")
    single = FERNet(replace(ckpt.config, mirror_average=False))
    single.load_state_dict(ckpt.model.state_dict())
    runner = TorchRunner.from_checkpoint(replace(ckpt, model=single))
    out = {}
    for split in ("val", "test"):
        images, labels = load_labelled(DATA / "ferplus" / split, ckpt.classes, SkipReport())
        m = compute_metrics(batched_logits(runner, images, ckpt.preprocessing, 128), labels, ckpt.classes)
        out[split] = {"accuracy": m.accuracy, "macro_recall": m.macro_recall,
                      "near_tie_share": m.margins["near_tie_share"]}
    return out


def lineage(run: Path, cfg: dict) -> dict:
    """The whole run's wall time (the checkpoint records it at the kept epoch) and, for a fine-tune, what its
    ``--init`` run was (command, epochs, wall time, weights): a model card must give every stage's command."""
    from edge_fer.artifacts.checkpoint import sha256_file

    history = json.loads((run / "metrics.json").read_text())["history"]
    out: dict = {"run_wall_time_s": history[-1]["wall_s"], "run_epochs": sum(h["epoch"] > 0 for h in history)}
    parent = Path(cfg.get("init") or "") / "model.json"
    if cfg.get("init") and parent.is_file():
        tr = json.loads(parent.read_text())["training"]
        out["init_training"] = {"from": cfg["init"],
                                "weights_sha256": sha256_file(parent.with_name("model.safetensors")),
                                "command": tr["command"], "epochs": tr.get("run_epochs", tr["config"]["epochs"]),
                                "wall_time_s": tr.get("run_wall_time_s", tr["wall_time_s"])}
        if "init_training" in tr:  # the parent was itself a fine-tune: keep the whole chain
            out["init_training"]["init_training"] = tr["init_training"]
    return out


def init_chain(training: dict) -> list[dict]:
    """The ``--init`` runs behind a model, nearest first."""
    chain, stage = [], training.get("init_training")
    while stage:
        chain.append(stage)
        stage = stage.get("init_training")
    return chain


def int8_latency(bench_files: list[Path]) -> dict[str, list[dict]]:
    """Batch-1 medians of the INT8 and torch rows of bench results, by checkpoint sha256."""
    out: dict[str, list[dict]] = {}
    for path in bench_files:
        res = json.loads(path.read_text())
        cpu = res["machine"].get("cpu", "?")
        torch_ms = next(t["median_ms"] for t in res["rows"]["torch fp32"]["latency"] if t["batch"] == 1)
        for name, row in res["rows"].items():
            if row["precision"] != "int8":
                continue
            b1 = next(t for t in row["latency"] if t["batch"] == 1)
            out.setdefault(res["checkpoint_sha256"], []).append(
                {"row": name, "ms": b1["median_ms"], "torch_ms": torch_ms, "cpu": cpu, "file": path.name,
                 "agreement": row.get("top1_agreement"), "size": res.get("img_size")})
    return out


def model_section(name: str, meta: dict, latency: list[dict], sha: str) -> str:
    m, tr = meta["metrics"], meta["training"]
    test, val, mini = m["test"], m["val"], m["fer_mini_test"]
    arch, cfg, machine = meta["architecture"], tr["config"], tr["machine"]
    size = meta["preprocessing"]["img_size"]
    rows = ["| class | test images | recall (accuracy on the class) |", "|---|---:|---:|"]
    for i, cls in enumerate(test["classes"]):
        rows.append(f"| {cls} | {sum(test['confusion'][i])} | {test['per_class_recall'][cls]:.1%} |")
    if cfg["head"] == "cosine":
        loss = f"ArcFace (s={cfg['scale']:g}, margin {cfg['margin']}) + {cfg['center_weight']}·Center loss"
    else:
        loss = f"softmax cross-entropy + {cfg['center_weight']}·Center loss (on the normalised neck output)"
    labels = "FER+ annotator vote distributions" if cfg.get("labels") == "votes" else "majority labels"
    lat = "\n".join(f"| {x['row']} | {x['ms']:.2f} | {x['torch_ms'] / x['ms']:.2f}× | {x['cpu']} (`{x['file']}`) |"
                    for x in latency) or "| (not measured) | | | |"
    margins = test.get("margins", {})
    stages = ", ".join(f"{s}:{e}" for s, e in cfg["schedule"]) if cfg.get("schedule") else f"{size}:{cfg['epochs']}"
    init = "".join(f" {'Fine-tuned' if i == 0 else 'That was fine-tuned'} from `{p['from']}`"
                   f"{' (the default this model replaced)' if Path(p['from']).name == name else ''} (weights sha256 "
                   f"`{p['weights_sha256'][:16]}…`), trained with `{p['command']}` ({p['epochs']} epochs, "
                   f"{p['wall_time_s'] / 60:.0f} min)." for i, p in enumerate(init_chain(tr))) \
        or (f" Fine-tuned from `{cfg['init']}`." if cfg.get("init") else "")
    wall = (f"{tr['wall_time_s'] / 60:.0f} min to the kept epoch, {tr['run_wall_time_s'] / 60:.0f} min for all "
            f"{tr['run_epochs']}" if "run_wall_time_s" in tr else f"{tr['wall_time_s'] / 60:.0f} min")
    first = cfg["schedule"][0][0] if cfg.get("schedule") else size
    recal = (f" BatchNorm statistics re-estimated on {cfg['recalibrate_bn']} train images at {first} px first and at "
             "each new size." if cfg.get("recalibrate_bn") else "")
    resumed = tr.get("resumed_note", "")
    one = m.get("single_view")
    mirror = (f"- **Mirror averaging** (`--mirror-average`): the graph runs each face and its mirror image as one "
              f"batch of two and averages their logits, so every backend does it and inference costs two passes. "
              f"The same weights with one view: FER+ test {one['test']['accuracy']:.1%} accuracy, "
              f"{one['test']['macro_recall']:.1%} macro recall, {one['test']['near_tie_share']:.1%} near-ties "
              f"(val {one['val']['accuracy']:.1%} / {one['val']['macro_recall']:.1%}).\n" if one else "")
    erase = f" Random erasing (`--erase {cfg['erase']:g}`) on top of the flips, shifts and rotations." \
        if cfg.get("erase") else ""
    ema = (f"- **Weight average** (`--ema {cfg['ema']:g}`): the shipped weights are an exponential moving average of "
           "the trained ones (BatchNorm statistics included), the network validated at every epoch.\n"
           if cfg.get("ema") else "")
    return f"""## `{name}/` ({size}×{size} input)

Weights sha256 `{sha[:16]}…`; architecture: the seed's FERNet, width {arch['width']}, {arch['attention']}
attention, {arch["head"]} head, neck `{arch["neck"]}` (at inference an affine map, exported as part of the head){
"; averages each face with its mirror image" if arch.get("mirror_average") else ""}.

| set | images | accuracy | macro recall (classes ≥ 20 images) |
|---|---:|---:|---:|
| FER+ test (headline) | {test['n']} | **{test['accuracy']:.1%}** | **{test['macro_recall']:.1%}** |
| FER+ val (model selection) | {val['n']} | {val['accuracy']:.1%} | {val['macro_recall']:.1%} |
| fer-mini test (re-checked in CI within 3 points) | {mini['n']} | {mini['accuracy']:.1%} | {mini['macro_recall']:.1%} |

Logit margins on FER+ test: median top-2 gap {margins.get('median_top2_gap', float('nan')):.2f},
near-ties (gap < 0.1) {margins.get('near_tie_share', float('nan')):.1%}, median logit spread
{margins.get('median_logit_spread', float('nan')):.2f}.

Per class on FER+ test:

{chr(10).join(rows)}

INT8 latency at {size} px, batch 1 (median of interleaved rounds, `edge-fer bench`):

| row | ms | vs torch fp32 | machine (file in benchmarks/results) |
|---|---:|---:|---|
{lat}

![confusion matrix, FER+ test]({name}/confusion_matrix.png)
![loss]({name}/loss.png) ![accuracy]({name}/accuracy.png)

- **Loss**: {loss}; {cfg['balance']} class weights, logit adjustment τ={cfg.get('logit_adjust', 0)};
  trained on {labels}.{erase}
- **Command**: `{tr['command']}`{init}{recal}{resumed}
- Schedule (size:epochs) {stages}; AdamW lr {cfg['lr']}, weight decay {cfg['weight_decay']}, batch
  {cfg['batch_size']}, warm-up 1 epoch then cosine; best epoch on val (mean of accuracy and macro recall):
  {m.get('best_epoch', '?')}.
{mirror}{ema}- Wall time {wall} on {machine.get('cores')} CPU cores ({machine.get('cpu')}),
  torch {machine.get('torch')}, autocast {tr.get('amp')}.
"""


def init_description(metas: list[dict], default_sha: str) -> str:
    """Where the 224 px variant started: the shipped default's weights, or one of the stages behind it."""
    start = metas[1]["training"].get("init_training", {})
    if start.get("weights_sha256") == default_sha:
        return "the shipped default's weights"
    stage = next((p for p in init_chain(metas[0]["training"]) if p["weights_sha256"] == start.get("weights_sha256")),
                 None)
    return (f"an earlier stage of the default (`{stage['from']}`, before the continuations that made the default)"
            if stage else "another model's weights")


def variant_note() -> str:
    """What the 224 px variant is worth next to the default, from both model.json files."""
    paths = [MODELS / name / "model.json" for name in ORDER]
    if not all(p.is_file() for p in paths):
        return ""
    metas = [json.loads(p.read_text()) for p in paths]
    small, big = (m["metrics"]["test"] for m in metas)
    from edge_fer.artifacts.checkpoint import sha256_file

    base = init_description(metas, sha256_file(MODELS / ORDER[0] / "model.safetensors"))
    schedule = metas[1]["training"]["config"].get("schedule") or [[metas[1]["architecture"]["img_size"], 1]]
    epochs = ", ".join(f"{n} at {size} px" for size, n in schedule)
    macs = ("12× the MACs of one 64 px view (6× the mirror-averaging default's two)"
            if metas[0]["architecture"].get("mirror_average") else "12× the MACs")
    views = ("" if metas[1]["architecture"].get("mirror_average") else
             " It runs one view per face: unlike the default, it does not average each face with its mirror image"
             " (a second pass at 224 px).") if metas[0]["architecture"].get("mirror_average") else ""
    history = json.loads((MODELS / ORDER[1] / "metrics.json").read_text())["history"]
    steps = ", ".join(f"{h['val_acc']:.1%} at {h['img_size']} px" for h in history)
    return f"""## The 224 px variant next to the default

FER+ test {big['accuracy']:.1%} accuracy and {big['macro_recall']:.1%} macro recall, against the default's
{small['accuracy']:.1%} and {small['macro_recall']:.1%}. It is {base} fine-tuned to the seed's
224×224 input on the whole FER+ train set: BatchNorm statistics re-estimated at each new size, then epochs
{epochs} (val accuracy along the way: {steps}). Without the
fine-tuning, the default's weights at 224 px reach 28.9% on 800 val images (BatchNorm recalibration alone):
the same face covers 3.5× more pixels than the receptive fields were trained for. FER+ images are 48×48,
so 224 px adds no detail, costs {macs} and is slower (INT8 latency below); use it where a
pipeline needs the seed's input size, and the default otherwise. More 224 px epochs (minutes each on a
GPU, `--device cuda`) would likely close part of the remaining gap.{views}
"""


def card(bench_files: list[Path]) -> str:
    from edge_fer.artifacts.checkpoint import sha256_file

    latency = int8_latency(bench_files)
    sections = []
    for name in ORDER:
        path = MODELS / name / "model.json"
        if path.is_file():
            sha = sha256_file(MODELS / name / "model.safetensors")
            sections.append(model_section(name, json.loads(path.read_text()), latency.get(sha, []), sha))
    ablation = ABLATION[-1].read_text().split("\n", 2)[2] if ABLATION else "(not recorded)\n"
    sections.insert(1, variant_note())
    return f"""# Model card: FERNet on FER+

Generated by `scripts/finalize_reference_model.py` from each model's `model.json`; do not edit the
figures by hand. `fernet-ferplus/` is the default model of every `edge-fer` command (override with a
checkpoint argument or `$EDGE_FER_MODEL`); `fernet-ferplus-224/` is the same network at the seed's
224×224 input.

- **Input**: one face crop, grayscale replicated to 3 channels, resized (INTER_LINEAR) to the model's
  size, scaled to [-1, 1]: `edge_fer.data.preprocessing.preprocess`, recorded in `model.json`.
- **Classes (output order)**: angry, contempt, disgust, fear, happy, neutral, sad, surprise. There is
  **no `pain` class**: no pain-labelled images exist in this project's data; the pipeline treats a
  `pain` folder like any other class, so retraining with one adds it.
- **Data**: `../shared/data/ferplus` train (FER+ near-duplicates of val/test images dropped), selected
  on val, reported on test (majority labels). Data fingerprints in `model.json`.

{chr(10).join(sections)}
## Why this head: the ablation
{ablation}
## Intended use and limitations
- Intended: research and engineering of on-device expression recognition; the reference for
  parity checks of exported/quantized engines (`edge-fer bench`).
- Not for decisions about people (hiring, policing, health, pain assessment): FER2013 labels are
  crowd-sourced perceptions of web images, not emotional states.
- FER2013 images are research data (`../shared/data/ferplus/PROVENANCE.md`); they are not in this
  repository, and redistribution of the weights should respect the dataset's terms.
- The models only saw aligned, tightly cropped 48×48 grayscale faces: give them face crops
  (`edge-fer predict` detects and crops faces), not whole photos. Expect lower accuracy on profile
  faces, occlusions, children and demographics under-represented in FER2013. Contempt and disgust
  have 11–17 val/test images each: their recall is measured in steps of 6–9 points.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", help="Training output folder")
    parser.add_argument("name", nargs="?", choices=ORDER, help="Model folder to write under edge_fer/models/")
    parser.add_argument("--bench", type=Path, nargs="*", default=[], help="edge-fer bench results.json files")
    parser.add_argument("--card-only", action="store_true", help="Only regenerate edge_fer/models/README.md")
    args = parser.parse_args()
    if not args.card_only:
        if args.run is None or args.name is None:
            parser.error("RUN and NAME are required unless --card-only")
        finalize(args.run, args.name, Console(stderr=True))
    write_text(MODELS / "README.md", card(args.bench))


if __name__ == "__main__":
    main()
