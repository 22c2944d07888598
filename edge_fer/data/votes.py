"""FER+ annotator votes as per-image target distributions (``--labels votes``).

FER+'s ``labels.csv`` holds the 10 crowd votes of every image.  Training on the
vote distribution instead of the majority label is the FER+ paper's best mode
(Barsoum et al. 2016, "cross-entropy" scheme): an image that 6 of 10 annotators
call sad and 4 call neutral teaches both.  Val and test are always scored on
majority labels.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_fer.data.dataset import canonical_class

VOTE_PREFIX = "votes_"


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    """``(N, k)`` float32 one-hot targets: majority labels as distributions."""
    targets = np.zeros((len(labels), k), dtype=np.float32)
    targets[np.arange(len(labels)), labels] = 1.0
    return targets


def vote_distributions(root: Path | str, paths: Sequence[Path], labels: np.ndarray,
                       classes: Sequence[str]) -> tuple[np.ndarray, int]:
    """``(N, K)`` target distributions for ``paths`` (images under ``root``) and how many came from votes.

    Vote columns are mapped to the model's classes by name (``votes_happiness`` -> ``happy``);
    ``unknown``/``NF`` and classes the model lacks are dropped.  Single votes are set to 0 (the
    FER+ paper's outlier rule, also behind the majority labels), and the rest renormalised.  An
    image without a row, or whose kept votes are all zero, keeps its one-hot folder label, so
    a dataset without ``labels.csv`` trains exactly as with majority labels.
    """
    root = Path(root)
    k = len(classes)
    targets = one_hot(labels, k)
    table = root / "labels.csv"
    if not table.is_file():
        return targets, 0
    index = {name: i for i, name in enumerate(classes)}
    with table.open(newline="", encoding="utf-8", errors="replace") as f:
        rows = csv.DictReader(f)
        columns = [(c, index.get(canonical_class(c[len(VOTE_PREFIX):]))) for c in rows.fieldnames or []
                   if c.startswith(VOTE_PREFIX)]
        columns = [(c, i) for c, i in columns if i is not None]
        if not columns:
            return targets, 0
        votes_by_path = {r.get("path", ""): r for r in rows}
    found = 0
    for n, p in enumerate(paths):
        row = votes_by_path.get(Path(p).relative_to(root).as_posix())
        if row is None:
            continue
        votes = np.zeros(k, dtype=np.float32)
        for column, i in columns:
            try:
                votes[i] += float(row[column] or 0)
            except ValueError:
                continue
        votes[votes <= 1] = 0.0
        if votes.sum() > 0:
            targets[n] = votes / votes.sum()
            found += 1
    return targets, found
