"""Accuracy, per-class recall and confusion matrices from logits: shared by train, eval and bench."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from edge_fer.data.preprocessing import Preprocessing, preprocess

# Macro recall counts classes with at least this many labelled images: FER+ test has 11 disgust and
# 15 contempt images, whose recall moves in 7-9 point steps and would swamp the average.
MACRO_MIN_SUPPORT = 20
NEAR_TIE = 0.1  # top-1/top-2 logit gap below which INT8 rounding flips a prediction easily


@dataclass
class Metrics:
    accuracy: float
    per_class_recall: dict[str, float]
    confusion: np.ndarray  # rows: true class, columns: predicted class (counts)
    classes: list[str]
    n: int
    margins: dict[str, float] = field(default_factory=dict)  # top-2 logit gaps: median, near-tie share

    @property
    def macro_recall(self) -> float:
        """Mean recall over the classes with >= MACRO_MIN_SUPPORT images (all classes if none has)."""
        support = self.confusion.sum(axis=1)
        keep = support >= MACRO_MIN_SUPPORT
        if not keep.any():
            keep = support > 0
        recalls = np.diag(self.confusion)[keep] / support[keep]
        return float(recalls.mean()) if recalls.size else float("nan")

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "macro_recall": self.macro_recall,
            "macro_recall_min_support": MACRO_MIN_SUPPORT,
            "n": self.n,
            "per_class_recall": self.per_class_recall,
            **({"margins": self.margins} if self.margins else {}),
            "classes": self.classes,
            "confusion": self.confusion.tolist(),
        }

    def summary(self) -> str:
        """One line for logs: accuracy and macro recall."""
        return f"accuracy {self.accuracy:.1%}, macro recall {self.macro_recall:.1%}"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top2_gap(logits: np.ndarray) -> np.ndarray:
    """Per image, the top-1 minus the top-2 logit: how far from a tie the prediction is."""
    top2 = np.sort(logits, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def logit_margins(logits: np.ndarray) -> dict[str, float]:
    """Median top-1/top-2 logit gap and the share of near-ties (gap < NEAR_TIE)."""
    if logits.shape[0] == 0 or logits.shape[1] < 2:
        return {}
    gap = top2_gap(logits)
    spread = logits.max(axis=1) - logits.min(axis=1)
    return {"median_top2_gap": float(np.median(gap)), "near_tie_share": float((gap < NEAR_TIE).mean()),
            "median_logit_spread": float(np.median(spread))}


def compute_metrics(logits: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> Metrics:
    pred = logits.argmax(axis=1)
    k = len(classes)
    confusion = np.bincount(labels * k + pred, minlength=k * k).reshape(k, k)
    support = confusion.sum(axis=1)
    recall = {
        name: float(confusion[i, i] / support[i]) if support[i] else float("nan")
        for i, name in enumerate(classes)
    }
    return Metrics(float((pred == labels).mean()) if len(labels) else float("nan"), recall, confusion,
                   list(classes), len(labels), logit_margins(logits))


def batched_logits(
    run: Callable[[np.ndarray], np.ndarray],
    images: Sequence[np.ndarray],
    spec: Preprocessing,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Preprocess ``images`` in batches and collect ``run(batch)`` logits: one loop for every backend."""
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        out.append(np.asarray(run(preprocess(chunk, spec)), dtype=np.float32))
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def torch_runner(model: torch.nn.Module, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """A ``batch -> logits`` function for a PyTorch model in eval mode."""
    model.eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
            return model(x).float().cpu().numpy()

    return run
