"""Calibration image sets for INT8 quantization (``edge-fer calib make``, ``--calib``).

A calibration set is either a folder (``DIR/<class>/*.png`` or a flat folder
of images), sampled per class with a seeded generator, or a *manifest*: a
text file naming the sampled images relative to a data root with their
sha256, so the exact same images can be used again and a changed or missing
file is an error instead of a silently different INT8 model::

    # edge-fer calibration manifest
    # root: /abs/path/to/data   (or a path relative to the manifest's folder)
    <sha256>  angry/fer0000038.png

Without a source the embedded LFW faces are used, with a warning: they
exercise the numerics but are not the deployment distribution.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from edge_fer.artifacts.atomic import refuse_inputs, write_text
from edge_fer.artifacts.checkpoint import sha256_file
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.data.dataset import SkipReport, inside, list_images, load_images, scan_folder
from edge_fer.data.faces import EMBEDDED_NAME, embedded_faces

HEADER = "# edge-fer calibration manifest"
RECOMMENDED = "300-500"
MAX_MANIFEST_BYTES = 64 << 20  # ~700k entries
EMBEDDED_WARNING = (f"no --calib given: calibrating on the embedded {EMBEDDED_NAME}; "
                    f">= {RECOMMENDED} images from the deployment camera are recommended for a trustworthy INT8 model")


def _allocate(counts: Sequence[int], size: int) -> list[int]:
    """Images per class, proportional to ``counts`` (largest remainder), summing to ``min(size, total)``."""
    total = sum(counts)
    if size >= total:
        return list(counts)
    exact = [size * c / total for c in counts]
    take = [min(c, int(e)) for c, e in zip(counts, exact, strict=True)]
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - int(exact[i])), i))
    short = size - sum(take)
    while short > 0:  # hand out the remainder, largest fractional part first
        for i in order:
            if short and take[i] < counts[i]:
                take[i] += 1
                short -= 1
    return take


def image_groups(folder: Path, skips: SkipReport | None = None) -> list[list[Path]]:
    """Images of ``folder`` grouped by class; a folder without class subfolders is one group.

    Symlinks that lead out of ``folder`` are skipped (and counted in ``skips``): a sample
    must never hash, or calibrate on, a file outside what it was pointed at.
    """
    if not folder.is_dir():
        raise EdgeFerError(f"{folder}: not a folder; give DIR/<class>/*.png, a flat folder of images, "
                           "or a manifest from edge-fer calib make")
    has_subdirs = any(p.is_dir() for p in folder.iterdir())
    if not has_subdirs:
        files = list_images(folder, skips=skips)
        if not files:
            raise EdgeFerError(f"{folder}: no images (.png/.jpg/...) in it")
        return [files]
    data = scan_folder(folder, skips=skips)
    return [[p for p, y in zip(data.paths, data.labels.tolist(), strict=True) if y == c]
            for c in range(len(data.classes))]


def sample_paths(data_dir: Path | str, size: int, seed: int, skips: SkipReport | None = None) -> list[Path]:
    """``size`` images of ``data_dir``, stratified per class, drawn with ``default_rng(seed)``; sorted."""
    if size < 1:
        raise EdgeFerError(f"--size {size}: need at least one calibration image")
    groups = image_groups(Path(data_dir), skips)
    rng = np.random.default_rng(seed)
    chosen: list[Path] = []
    for files, n in zip(groups, _allocate([len(g) for g in groups], size), strict=True):
        idx = np.sort(rng.choice(len(files), size=n, replace=False))
        chosen.extend(files[i] for i in idx.tolist())
    return chosen


def make_manifest(data_dir: Path | str, size: int, seed: int, skips: SkipReport | None = None
                  ) -> list[tuple[str, str]]:
    """``(relpath, sha256)`` of a stratified, seeded sample of ``data_dir`` (paths relative to it)."""
    root = Path(data_dir)
    return [(p.relative_to(root).as_posix(), sha256_file(p)) for p in sample_paths(root, size, seed, skips)]


def default_manifest_path(data: Path, size: int) -> Path:
    """``calibration/PARENT-FOLDER-SIZE.txt``: the design's calibration/ folder, created on first use (a fresh
    install has none)."""
    resolved = data.resolve()
    output = Path("calibration") / f"{resolved.parent.name}-{resolved.name}-{size}.txt"
    output.parent.mkdir(exist_ok=True)
    return output


def manifest_text(root: Path | str, entries: Sequence[tuple[str, str]], relative_to: Path | None = None) -> str:
    """The manifest; its root is absolute, or relative to the folder ``relative_to`` when given."""
    shown = Path(os.path.relpath(Path(root).resolve(), relative_to.resolve())) if relative_to else Path(root).resolve()
    lines = [HEADER, f"# root: {shown.as_posix()}"]
    lines += [f"{sha}  {rel}" for rel, sha in entries]
    return "\n".join(lines) + "\n"


def write_manifest(path: Path | str, root: Path | str, entries: Sequence[tuple[str, str]]) -> None:
    """Write the manifest text atomically: never over one of its images or a file that is not a manifest.

    A root given as a relative path is written relative to the manifest's own folder,
    so a manifest and its data that move together (a clone with ``../shared`` beside
    it) keep working; an absolute root stays absolute.
    """
    path = Path(path)
    refuse_inputs([path], [Path(root) / rel for rel, _ in entries])
    if path.exists() and not is_manifest(path):
        raise EdgeFerError(f"{path}: exists and is not an edge-fer calibration manifest; it is left alone: "
                           "choose another -o or move that file away")
    write_text(path, manifest_text(root, entries, None if Path(root).is_absolute() else path.parent))


def is_manifest(path: Path | str) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(HEADER)).decode("utf-8", "replace") == HEADER


def parse_manifest(path: Path | str) -> tuple[Path | None, list[tuple[str, str]]]:
    """The root named in the header (None if absent) and the ``(relpath, sha256)`` entries."""
    path = Path(path)
    if not is_manifest(path):
        raise EdgeFerError(f"{path}: not an edge-fer calibration manifest (first line must be {HEADER!r}); "
                           "make one with edge-fer calib make")
    root: Path | None = None
    entries: list[tuple[str, str]] = []
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise EdgeFerError(f"{path}: {path.stat().st_size / 1e6:.0f} MB is far too large for a calibration manifest")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise EdgeFerError(f"{path}: not UTF-8 text (byte {e.start}); make a new manifest with edge-fer calib make"
                           ) from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            if line.startswith("# root:"):
                root = Path(line.removeprefix("# root:").strip())
            continue
        sha, _, rel = line.partition("  ")
        if len(sha) != 64 or not rel:
            raise EdgeFerError(f"{path}:{n}: expected '<sha256>  <relative path>', got {line!r}")
        if not is_plain_relative(rel):
            raise EdgeFerError(f"{path}:{n}: {rel!r} is not a normalised path relative to the data root "
                               "(no leading /, no .., no empty parts); make a new manifest with edge-fer calib make")
        entries.append((rel, sha))
    if not entries:
        raise EdgeFerError(f"{path}: manifest lists no images")
    return root, entries


def is_plain_relative(rel: str) -> bool:
    """``a/b.png``: relative, normalised, no ``..``, no backslashes or NULs (no way out of the root on paper)."""
    return (bool(rel) and "\\" not in rel and "\0" not in rel and not rel.startswith("/")
            and posixpath.normpath(rel) == rel and ".." not in PurePosixPath(rel).parts and rel != ".")


def read_manifest(path: Path | str, root: Path | str | None = None) -> tuple[Path, list[tuple[str, str]]]:
    """Read a manifest and check every file's sha256; returns ``(root, entries)``.

    ``root`` overrides the header's (data moved to another machine).  A file that is
    missing, changed, or (through a symlink) outside the root is an error that lists them
    all alike: the message must not tell which paths exist.
    """
    path = Path(path)
    header_root, entries = parse_manifest(path)
    # a relative header root is relative to the manifest's folder (see write_manifest)
    base = Path(root) if root is not None else path.parent / header_root if header_root else path.parent
    bad = []
    for rel, sha in entries:
        file = base / rel
        if not (inside(base, file) and file.is_file() and sha256_file(file) == sha):
            bad.append(rel)
    if bad:
        shown = ", ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
        raise EdgeFerError(f"{path}: calibration images under {base} do not match the manifest; {len(bad)} "
                           f"missing or changed (sha256 differs): {shown}. Restore them, pass the right root, "
                           "or make a new manifest")
    return base, entries


def load_calibration(source: str | Path | None, size: int, seed: int, skips: SkipReport,
                     batch_size: int = 8) -> tuple[list[np.ndarray], dict]:
    """Decoded calibration images and a description of where they came from (for the report).

    ``source``: a folder (sampled like :func:`make_manifest`), a manifest file, or
    None for the embedded faces (``desc["warning"]`` says why that is weak; the command prints it once).
    Unreadable images are skipped and counted in ``skips``; fewer usable images than ``batch_size`` is an error.
    """
    desc: dict = {"seed": seed, "manifest_sha256": "", "warning": ""}
    if source is None:
        images = embedded_faces()
        desc.update(source=EMBEDDED_NAME, kind="embedded", warning=EMBEDDED_WARNING)
    else:
        src = Path(source)
        if src.is_file():
            root, entries = read_manifest(src)
            desc.update(source=str(src), kind="manifest", manifest_sha256=sha256_file(src), root=str(root))
        elif src.is_dir():
            root = src
            entries = make_manifest(src, size, seed, skips)
            text = manifest_text(src, entries)
            desc.update(source=str(src), kind="folder", size=size,
                        manifest_sha256=hashlib.sha256(text.encode()).hexdigest())
        else:
            raise EdgeFerError(f"--calib {source}: no such file or folder; give an image folder or a manifest "
                               "from edge-fer calib make")
        before = len(skips.skipped)
        images, _ = load_images([root / rel for rel, _ in entries], skips)
        desc["listed"] = len(entries)
        desc["skipped"] = len(skips.skipped) - before
    desc.setdefault("skipped", 0)
    desc["n_images"] = len(images)
    if len(images) < batch_size:
        raise EdgeFerError(f"--calib {source or EMBEDDED_NAME}: only {len(images)} readable calibration images, "
                           f"fewer than one batch of {batch_size}; give >= {RECOMMENDED} deployment images")
    return images, desc
