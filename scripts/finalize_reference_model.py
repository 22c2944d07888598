"""Copy a finished training run into models/fernet-ferplus and record its test metrics.

    python scripts/finalize_reference_model.py runs/fernet-ferplus

Evaluates on ../shared/data/ferplus/test (the card's headline figure) and
../shared/data/fer-mini/test (the figure CI re-checks), stores both in
model.json["metrics"], and writes the test confusion matrix beside the weights.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from rich.console import Console

from edge_fer.atomic import write_json
from edge_fer.evaluate_cmd import evaluate_checkpoint

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def main(run: Path) -> None:
    dest = REPO / "models" / "fernet-ferplus"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "model.json", "loss.png", "accuracy.png", "metrics.json"):
        shutil.copy2(run / name, dest / name)
    console = Console(stderr=True)
    results = {}
    for key, folder in (("test", DATA / "ferplus" / "test"), ("fer_mini_test", DATA / "fer-mini" / "test")):
        out = dest / "eval" / key
        results[key] = evaluate_checkpoint(dest / "model.safetensors", folder, out, 128, console).to_dict()
        results[key]["data"] = str(folder.relative_to(REPO.parent))
    shutil.copy2(dest / "eval" / "test" / "confusion_matrix.png", dest / "confusion_matrix.png")
    shutil.rmtree(dest / "eval")
    meta = json.loads((dest / "model.json").read_text())
    meta["metrics"].update(results)
    write_json(dest / "model.json", meta)
    console.print(f"test {results['test']['accuracy']:.4f}  fer-mini test {results['fer_mini_test']['accuracy']:.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
