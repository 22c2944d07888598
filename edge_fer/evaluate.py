"""Accuracy, per-class recall and confusion matrices from logits: shared by train, eval and bench."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from edge_fer.data.preprocessing import Preprocessing, preprocess


@dataclass
class Metrics:
    accuracy: float
    per_class_recall: dict[str, float]
    confusion: np.ndarray  # rows: true class, columns: predicted class (counts)
    classes: list[str]
    n: int

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "n": self.n,
            "per_class_recall": self.per_class_recall,
            "classes": self.classes,
            "confusion": self.confusion.tolist(),
        }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


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
                   list(classes), len(labels))


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
