"""The README's "Examples" block, run as written on fer-mini (scripts/readme_examples.py reads it from README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from readme_examples import examples  # noqa: E402


def test_examples_are_parsed_with_their_announced_exits() -> None:
    sample = """Examples:

```
edge-fer export -o fernet.onnx
edge-fer bench --device cpu --data ../shared/data/ferplus/test \\
    --calib x.txt   # exits 1 when the gate fails
edge-fer quantize a.onnx -o b.onnx   # a note
    # that goes on: exits 2 on a bad day
```
"""
    found = examples(sample)
    assert [e.allowed for e in found] == [{0}, {0, 1}, {0, 2}]
    assert found[1].command == "edge-fer bench --device cpu --data ../shared/data/fer-mini/test --calib x.txt"
    assert found[1].argv[:3] == ["edge-fer", "bench", "--device"]
    readme = examples((REPO / "README.md").read_text())
    assert len(readme) >= 10 and all(e.argv[0] in ("edge-fer", "python") for e in readme)


@pytest.mark.slow
def test_readme_examples_run_as_written(fer_mini: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "readme_examples.py"), "--fast",
                           "--keep", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    clone = tmp_path / "edge-fer"
    assert (clone / "annotated" / "astronaut.png").is_file() and (clone / "annotated" / "predictions.json").is_file()
    assert (clone / "fernet-int8.onnx").is_file() and (clone / "fernet-int8-maxdrop.onnx").is_file()
