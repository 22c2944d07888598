"""Write-then-rename, so a failed or interrupted run never leaves a partial artifact."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edge_fer.errors import EdgeFerError


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    if not path.parent.is_dir():
        raise EdgeFerError(f"{path}: folder {path.parent} does not exist; create it or choose another output path")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; artifacts get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def staging_dir(target: Path | str) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to assemble a multi-file artifact in; it is removed afterwards.

    The caller moves the finished files (or the folder itself) onto ``target`` with
    ``os.replace``: same file system, so each move is atomic, and whatever is left on
    failure goes away with the folder.
    """
    target = Path(target)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(stage, 0o755)  # mkdtemp makes 0700; a folder renamed into place gets the usual permissions
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_json(path: Path | str, data: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
