"""The figures people look at instead of JSON: training curves and confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from edge_fer.artifacts.atomic import atomic_path


def save_figure(fig: plt.Figure, path: Path | str) -> None:
    """Write ``fig`` as PNG atomically (a half-written plot never replaces a good one) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(history: Sequence[dict], keys: Sequence[str], ylabel: str, path: Path | str,
                title: str = "") -> None:
    """One line per history key over epochs (e.g. train/val loss), a dotted marker where the input size changes."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    epochs = [h["epoch"] for h in history]
    for key in keys:
        ax.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", ms=3, label=key.replace("_", " "))
    sizes = [h.get("img_size") for h in history]
    for i in range(1, len(sizes)):
        if sizes[i] != sizes[i - 1]:
            ax.axvline(epochs[i] - 0.5, color="grey", ls=":", lw=1)
            # x in data, y in axes coordinates, unclipped: the label sits on the line whatever the y range
            ax.text(epochs[i] - 0.45, 0.98, f"{sizes[i]}px", transform=ax.get_xaxis_transform(), ha="left",
                    va="top", fontsize=7, color="grey", clip_on=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{ylabel.capitalize()} per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: Path | str, title: str = "") -> None:
    """Row-normalised confusion matrix (recall on the diagonal) with class names on both axes."""
    fig, ax = plt.subplots(figsize=(6, 5.2))
    _draw_confusion(ax, confusion, classes, title)
    save_figure(fig, path)


def _draw_confusion(ax: plt.Axes, confusion: np.ndarray, classes: Sequence[str], title: str,
                    row_labels: bool = True) -> None:
    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros(confusion.shape, float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    k = len(classes)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes if row_labels else [])
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    if row_labels:
        ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (rows: recall per true class)")


def plot_confusions_side_by_side(confusions: Sequence[tuple[str, np.ndarray]], classes: Sequence[str],
                                 path: Path | str, title: str = "") -> None:
    """Several confusion matrices in one row (e.g. float vs INT8); class names only left of the first.

    The rows are the same classes in every panel, so repeating their names would only
    push them into the neighbouring panel; constrained layout keeps the rest apart.
    """
    fig, axes = plt.subplots(1, len(confusions), figsize=(1.5 + 4.4 * len(confusions), 5), layout="constrained",
                             squeeze=False)
    for i, (ax, (name, conf)) in enumerate(zip(axes[0], confusions, strict=True)):
        _draw_confusion(ax, conf, classes, name, row_labels=i == 0)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
