"""Two-process DDP training under torchrun (Gloo on CPU) on real FER images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from edge_fer.artifacts.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="this PyTorch build has no Gloo backend")


def test_torchrun_two_processes_train_and_rank_0_writes_once(fer_mini: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "edge_fer.cli", "train", "--data", str(fer_mini), "--out", str(out), "--epochs", "1",
           "--batch-size", "16", "--img-size", "48", "--width", "0.25", "--limit-per-class", "8",
           "--device", "cpu", "--no-amp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    # Rank 0 alone prints (and writes): one start line naming the world, one epoch line, one summary.
    assert log.count("DDP world size 2 (global batch 32)") == 1, log
    assert log.count("best val score") == 1, log
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1]
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["world_size"] == 2
    ckpt = load_checkpoint(out)
    assert len(ckpt.classes) == 8 and ckpt.config.width == 0.25
    assert json.loads((out / "last" / "state.json").read_text())["epoch"] == 1
