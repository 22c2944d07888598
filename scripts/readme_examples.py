"""Run the README's "Examples" block as written, in order, and fail on an exit status it does not announce.

    python scripts/readme_examples.py [--fast] [--keep DIR]

The commands are read from README.md (the fenced block after the line "Examples:"),
never copied here, so an edited README stays covered. Each runs through bash, as a
user would paste it, in a scratch "clone" (``calibration/`` and ``scripts/`` copied in,
``../shared`` linked beside it) with one substitution: FER+ paths
(``../shared/data/ferplus/``) become fer-mini ones, which CI has.

A command may exit non-zero only where its comment announces it ("exits 1 ..."): a
bench whose gate fails, a Jetson that is not there. ``--fast`` (the test suite's mode)
runs every command without a checkpoint on the model the README's own ``train``
example wrote (through ``$EDGE_FER_MODEL``), a few times faster than the 224 px
reference model; without it, the shipped model is used, as in the README.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FERPLUS, FER_MINI = "../shared/data/ferplus/", "../shared/data/fer-mini/"
ANNOUNCED = re.compile(r"\bexits? (\d+)")


@dataclass
class Example:
    code: str  # as written in the README, continuation lines joined
    comment: str  # its trailing comment(s): where the README announces a non-zero exit

    @property
    def allowed(self) -> set[int]:
        """0 and every status the comment announces ("exits 1 when ...")."""
        return {0, *(int(n) for n in ANNOUNCED.findall(self.comment))}

    @property
    def command(self) -> str:
        """What runs: the code with FER+ paths pointing at fer-mini."""
        return self.code.replace(FERPLUS, FER_MINI)

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)


def examples(readme: str) -> list[Example]:
    """The commands of the fenced block that follows the line ``Examples:``.

    ``\\`` continues a command on the next line; a comment-only line continues the comment above.
    """
    lines = readme.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Examples:")
        fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
        end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
    except StopIteration:
        raise SystemExit("README.md: no fenced block after a line 'Examples:'") from None
    out: list[Example] = []
    code: list[str] = []
    comment: list[str] = []
    for line in lines[fence + 1:end]:
        text, _, note = line.partition("#")
        if not text.strip():  # a comment-only line goes on the comment of the command above it
            if note.strip() and out and not code:
                out[-1].comment = f"{out[-1].comment} {note.strip()}".strip()
            continue
        comment.append(note.strip())
        if text.rstrip().endswith("\\"):
            code.append(text.rstrip()[:-1].strip())
            continue
        code.append(text.strip())
        out.append(Example(" ".join(code), " ".join(c for c in comment if c)))
        code, comment = [], []
    return out


def _clone(work: Path) -> Path:
    """A scratch checkout layout: the files the examples name, and ``../shared`` beside it."""
    clone = work / "edge-fer"
    clone.mkdir()
    for folder in ("calibration", "scripts"):
        shutil.copytree(REPO / folder, clone / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "shared").symlink_to((REPO.parent / "shared").resolve())
    return clone


def _trained_out(example: Example) -> str | None:
    """The --out of an ``edge-fer train`` example (its model.safetensors), else None."""
    argv = example.argv
    if argv[:2] != ["edge-fer", "train"]:
        return None
    for flag in ("--out", "-o"):
        if flag in argv:
            return argv[argv.index(flag) + 1]
    return "runs/train"


def run(fast: bool, keep: Path | None = None, readme: Path = REPO / "README.md") -> int:
    items = examples(readme.read_text())
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("EDGE_FER_MODEL", None)
    work = Path(tempfile.mkdtemp(prefix="edge-fer-readme-")) if keep is None else keep
    work.mkdir(parents=True, exist_ok=True)
    clone = _clone(work)
    failures = []
    try:
        for i, example in enumerate(items, 1):
            print(f"[{i}/{len(items)}] $ {example.command}", flush=True)
            start = time.perf_counter()
            status = subprocess.run(["bash", "-c", example.command], cwd=clone, env=env).returncode
            took = time.perf_counter() - start
            verdict = "ok" if status in example.allowed else "UNANNOUNCED EXIT"
            print(f"[{i}/{len(items)}] exit {status} ({verdict}), {took:.0f} s", flush=True)
            if status not in example.allowed:
                failures.append(f"{example.code!r} exited {status} (announced: {sorted(example.allowed)})")
            trained = _trained_out(example)
            if fast and trained and status == 0:
                env["EDGE_FER_MODEL"] = str(clone / trained / "model.safetensors")
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"README example failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="later examples use the model the train example wrote")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep what the examples wrote")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="another README (default: this one)")
    args = parser.parse_args()
    sys.exit(run(args.fast, args.keep, args.readme))
