"""Write-then-rename, so a failed or interrupted run never leaves a partial artifact.

Everything temporary lives beside the output (same file system: every rename is
atomic) and is removed on every exit path; SIGINT and SIGTERM are held back while a
group of renames lands (:func:`commit`), so an artifact and its report appear together
or not at all.  The guards here keep a command from writing over what it was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from edge_fer.artifacts.errors import EdgeFerError

_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _check_parent(path: Path) -> None:
    if not path.parent.is_dir():
        what = "is not a folder" if path.parent.exists() else "does not exist"
        raise EdgeFerError(f"{path}: folder {path.parent} {what}; create it or choose another output path")


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    _check_parent(path)
    if path.is_dir():
        raise EdgeFerError(f"{path}: is a folder where a file is expected; give a file name")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp_path = Path(tmp)
    try:
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        yield tmp_path
        # mkstemp makes 0600, and writers that replace the file (safetensors) keep theirs: set it last
        os.chmod(tmp, 0o666 & ~umask)
        commit([(tmp_path, path)])
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def staging_dir(target: Path | str) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to assemble a multi-file artifact in; it is removed afterwards.

    The caller moves the finished files (or the folder itself) onto their places with
    :func:`commit`: same file system, so each move is atomic, and whatever is left on
    failure goes away with the folder.
    """
    target = Path(target)
    _check_parent(target)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(stage, 0o755)  # mkdtemp makes 0700; a folder renamed into place gets the usual permissions
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done, then deliver them (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in _HELD_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


def commit(moves: Sequence[tuple[Path, Path]]) -> None:
    """Rename every staged file onto its final path, as one step with respect to Ctrl-C and SIGTERM.

    Should a rename fail (disk, permissions), the files already moved are removed again,
    so an artifact never stands beside a report of another run.
    """
    done: list[Path] = []
    with signals_held():
        try:
            for staged, final in moves:
                os.replace(staged, final)
                done.append(final)
        except BaseException:
            for final in done:
                final.unlink(missing_ok=True)
            raise


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether two paths name the same file (hard links and symlinks included), existing or not."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def refuse_inputs(outputs: Iterable[Path | str], inputs: Iterable[Path | str]) -> None:
    """One-line error when an output path is one of the command's input files."""
    inputs = [Path(p) for p in inputs if p is not None]
    for out in outputs:
        for source in inputs:
            if same_file(out, source):
                raise EdgeFerError(f"{out}: is an input of this command ({source}); writing it would destroy "
                                   "the input: choose another output path")


def check_sidecar(path: Path | str, fmt: str, artifact: Path | str | None = None) -> None:
    """A JSON sidecar may only replace a file that edge-fer wrote as the same kind of sidecar (``format``),
    for the same artifact; anything else there (a checkpoint's model.json, a user's file) is refused."""
    path = Path(path)
    if not path.exists():
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        data = None
    ours = isinstance(data, dict) and data.get("format") == fmt and (
        artifact is None or Path(str(data.get("output", ""))).name == Path(artifact).name)
    if not ours:
        raise EdgeFerError(f"{path}: exists and was not written by edge-fer as the {fmt} of "
                           f"{Path(artifact).name if artifact else 'this output'}; it is left alone: "
                           "choose another output path or move that file away")


def write_json(path: Path | str, data: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
