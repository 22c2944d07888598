"""The figures people look at instead of JSON: training curves and confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from edge_fer.atomic import atomic_path


def save_figure(fig: plt.Figure, path: Path | str) -> None:
    """Write ``fig`` as PNG atomically (a half-written plot never replaces a good one) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(history: Sequence[dict], keys: Sequence[str], ylabel: str, path: Path | str) -> None:
    """One line per history key over epochs (e.g. train/val loss)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    epochs = [h["epoch"] for h in history]
    for key in keys:
        ax.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", ms=3, label=key.replace("_", " "))
    sizes = [h.get("img_size") for h in history]
    for i in range(1, len(sizes)):
        if sizes[i] != sizes[i - 1]:
            ax.axvline(epochs[i] - 0.5, color="grey", ls=":", lw=1)
            ax.text(epochs[i] - 0.45, ax.get_ylim()[1], f"{sizes[i]}px", va="top", fontsize=7, color="grey")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: Path | str, title: str = "") -> None:
    """Row-normalised confusion matrix (recall on the diagonal) with class names on both axes."""
    fig, ax = plt.subplots(figsize=(6, 5.2))
    _draw_confusion(ax, confusion, classes, title)
    save_figure(fig, path)


def _draw_confusion(ax: plt.Axes, confusion: np.ndarray, classes: Sequence[str], title: str) -> None:
    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros(confusion.shape, float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    k = len(classes)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)


def plot_confusions_side_by_side(confusions: Sequence[tuple[str, np.ndarray]], classes: Sequence[str],
                                 path: Path | str) -> None:
    """Several confusion matrices in one row (e.g. float vs INT8)."""
    fig, axes = plt.subplots(1, len(confusions), figsize=(5.5 * len(confusions), 5))
    for ax, (title, conf) in zip(np.atleast_1d(axes), confusions, strict=True):
        _draw_confusion(ax, conf, classes, title)
    save_figure(fig, path)
