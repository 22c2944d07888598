"""Folder-per-class face datasets (the FER2013Plus layout).

``ROOT/{train,val,test}/<class>/*.png|jpg``; ``val`` is optional and is then
split from ``train`` with a fixed seed.  Class names are folder names
normalised through :data:`ALIASES` and kept in sorted order, which is recorded
in every checkpoint.  Unreadable images are skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.text import count

DEFAULT_MAX_PIXELS = 50_000_000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

# Spellings seen in FER datasets (FER2013, FER+, the seed's Kaggle set) -> canonical name.
ALIASES = {
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "saddness": "sad",
    "anger": "angry",
    "surprised": "surprise",
    "suprise": "surprise",
    "fearful": "fear",
    "scared": "fear",
    "disgusted": "disgust",
    "contemptuous": "contempt",
    "neutrality": "neutral",
    "painful": "pain",
}


def canonical_class(folder_name: str) -> str:
    """The canonical class name for a folder name (``Happiness`` -> ``happy``)."""
    name = folder_name.strip().lower().replace(" ", "_")
    return ALIASES.get(name, name)


UNREADABLE = "unreadable"
ESCAPES = "symlinks leaving the folder"


@dataclass
class SkipReport:
    """Images skipped, by path: undecodable or over the pixel cap (unreadable), or symlinks out of the folder."""

    skipped: list[str] = field(default_factory=list)
    escaped: list[str] = field(default_factory=list)

    def add(self, path: Path | str, reason: str = UNREADABLE) -> None:
        (self.escaped if reason == ESCAPES else self.skipped).append(str(path))

    def summary(self) -> str:
        parts = []
        for items, what in ((self.skipped, count(len(self.skipped), "unreadable image")),
                            (self.escaped, f"{len(self.escaped)} {ESCAPES}")):
            if items or what.endswith("images"):
                shown = ", ".join(items[:3]) + (" ..." if len(items) > 3 else "")
                parts.append(f"{what} skipped ({shown})" if items else what)
        return "; ".join(parts) if self.escaped else parts[0]


def inside(root: Path | str, path: Path | str) -> bool:
    """Whether ``path``, every symlink resolved, is ``root`` or below it (a path read from a folder stays there)."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def max_pixels() -> int:
    """The decoded-image size cap: ``$EDGE_FER_MAX_PIXELS``, default 50 MP (a 7000 x 7000 photo)."""
    value = os.environ.get("EDGE_FER_MAX_PIXELS", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_PIXELS


def image_size(path: Path | str) -> tuple[int, int] | None:
    """``(width, height)`` from the file header alone (no decoding), None when it has none Pillow knows."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: the cap here decides
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError:  # over twice Pillow's own cap (~180 MP): over ours too
        return (1 << 16, 1 << 16)
    except Exception:  # not an image Pillow knows: OpenCV decides
        return None


def read_image(path: Path | str) -> np.ndarray | None:
    """Decode an image file as stored (gray stays gray, colour is BGR); None if unreadable.

    Images over :func:`max_pixels` are unreadable too, judged from the header before
    decoding: a 425 KB PNG can hold 20000 x 20000 pixels (1.2 GB decoded).
    """
    if not Path(path).is_file():  # a device or FIFO named x.png (/dev/zero) would be read forever
        return None
    size = image_size(path)
    if size is not None and size[0] * size[1] > max_pixels():
        return None
    try:
        raw = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if raw.size == 0:
        return None
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        return None
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    return image


def list_images(folder: Path, root: Path | None = None, skips: SkipReport | None = None) -> list[Path]:
    """Image files directly inside ``folder``, sorted for reproducibility.

    Symlinks that lead out of ``root`` (default ``folder``) are skipped, and counted in ``skips``.
    """
    files = []
    for p in sorted(folder.iterdir()):
        if not (p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
            continue
        if p.is_symlink() and not inside(root or folder, p):
            if skips is not None:
                skips.add(p, ESCAPES)
            continue
        files.append(p)
    return files


@dataclass
class FaceFolder:
    """One split: image paths, integer labels and the class names they index."""

    root: Path
    paths: list[Path]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        c = Counter(self.labels.tolist())
        return {name: c.get(i, 0) for i, name in enumerate(self.classes)}

    def subset(self, index: Sequence[int] | np.ndarray) -> FaceFolder:
        index = np.asarray(index, dtype=np.int64)
        return FaceFolder(self.root, [self.paths[i] for i in index], self.labels[index], self.classes)

    def fingerprint(self) -> str:
        """sha256 over relative paths, labels and file sizes: cheap and changes with the data."""
        h = hashlib.sha256()
        for p, y in zip(self.paths, self.labels.tolist(), strict=True):
            h.update(f"{p.relative_to(self.root).as_posix()}\t{y}\t{p.stat().st_size}\n".encode())
        return h.hexdigest()


def scan_folder(folder: Path | str, classes: Sequence[str] | None = None, skips: SkipReport | None = None
                ) -> FaceFolder:
    """Read ``folder/<class>/*``.

    With ``classes`` given (a model's class list), labels index that list and a
    folder for an unknown class is an error; otherwise the classes are the
    folders found, sorted.  Empty class folders and fewer than 2 classes are errors.
    Symlinks (class folders or images) leading out of ``folder`` are skipped and counted in ``skips``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgeFerError(f"{folder}: not a folder; expected {folder}/<class>/*.png "
                           "(e.g. ../shared/data/ferplus/test)")
    found: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.is_symlink() and not inside(folder, sub):
            if skips is not None:
                skips.add(sub, ESCAPES)
            continue
        files = list_images(sub, folder, skips)
        if not files:
            raise EdgeFerError(f"{sub}: class folder has no images; add images or remove the folder")
        found.setdefault(canonical_class(sub.name), []).extend(files)
    if classes is None:
        if len(found) < 2:
            raise EdgeFerError(
                f"{folder}: found {len(found)} class folder(s), need at least 2 ({folder}/<class>/*.png)"
            )
        classes = sorted(found)
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise EdgeFerError(f"{folder}: classes {unknown} are not among the model's classes {list(classes)}")
        if not found:
            raise EdgeFerError(f"{folder}: no class folders; expected {folder}/<class>/*.png")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        for p in found.get(name, []):
            paths.append(p)
            labels.append(index)
    return FaceFolder(folder, paths, np.asarray(labels, dtype=np.int64), list(classes))


def stratified_split(data: FaceFolder, fraction: float, seed: int) -> tuple[FaceFolder, FaceFolder]:
    """Split off ``fraction`` of every class (at least one image each) with a fixed seed."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for c in range(len(data.classes)):
        idx = np.flatnonzero(data.labels == c)
        if len(idx) < 2:
            continue
        n = max(1, round(len(idx) * fraction))
        held.extend(rng.choice(idx, size=n, replace=False).tolist())
    mask = np.zeros(len(data), dtype=bool)
    mask[held] = True
    return data.subset(np.flatnonzero(~mask)), data.subset(np.flatnonzero(mask))


def load_splits(root: Path | str, val_fraction: float = 0.1, seed: int = 0) -> dict[str, FaceFolder]:
    """``train``, ``val`` and (if present) ``test`` splits of a dataset root."""
    root = Path(root)
    if not (root / "train").is_dir():
        raise EdgeFerError(f"{root}: no train/ folder; expected {root}/train/<class>/*.png (FER2013Plus layout)")
    train = scan_folder(root / "train")
    splits = {"train": train}
    if (root / "val").is_dir():
        splits["val"] = scan_folder(root / "val", train.classes)
    else:
        splits["train"], splits["val"] = stratified_split(train, val_fraction, seed)
    if (root / "test").is_dir():
        splits["test"] = scan_folder(root / "test", train.classes)
    return splits


def near_duplicate_paths(root: Path | str) -> set[Path]:
    """Training images that FER+'s ``labels.csv`` marks as near-duplicates of a val/test image.

    Training on them lets test accuracy count memorised copies; ``edge-fer train``
    drops them unless told otherwise. Empty when the dataset has no such column.
    """
    root = Path(root)
    table = root / "labels.csv"
    if not table.is_file():
        return set()
    with table.open(newline="") as f:
        rows = csv.DictReader(f)
        if rows.fieldnames is None or "near_dup_in_ferplus_val_test" not in rows.fieldnames:
            return set()
        return {root / r["path"] for r in rows if r["near_dup_in_ferplus_val_test"] == "yes"}


def load_images(paths: Iterable[Path], skips: SkipReport) -> tuple[list[np.ndarray], list[int]]:
    """Decode ``paths``; returns the images and the positions that decoded (others go to ``skips``)."""
    images: list[np.ndarray] = []
    kept: list[int] = []
    for i, p in enumerate(paths):
        image = read_image(p)
        if image is None:
            skips.add(p)
            continue
        images.append(image)
        kept.append(i)
    return images, kept


def load_labelled(folder: Path | str, classes: Sequence[str], skips: SkipReport
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """Images of a labelled ``folder/<class>/*.png`` and their class indices in ``classes``' order.

    The one loader for labelled folders (eval, bench ``--data``, quantize ``--val``): unreadable
    images are skipped and counted in ``skips``, so labels stay aligned with the images.
    """
    data = scan_folder(folder, classes)
    images, kept = load_images(data.paths, skips)
    return images, data.labels[np.asarray(kept, dtype=np.int64)]
