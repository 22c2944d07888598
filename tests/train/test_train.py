"""Training smoke runs on real FER images, resume, checkpoints and eval output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from edge_fer.artifacts.checkpoint import load_checkpoint
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.cli import app
from edge_fer.train.config import CPU_BF16_MIN_SIZE, TrainConfig, amp_dtype, parse_schedule
from edge_fer.train.trainer import train


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), epochs=3, batch_size=32, lr=3e-3, img_size=48, width=0.25,
                margin=0.0, limit_per_class=24, amp=False)
    return TrainConfig(**{**base, **kw})


def test_smoke_training_lowers_the_loss_and_writes_everything(fer_mini: Path, tmp_path: Path) -> None:
    out = train(_cfg(fer_mini, tmp_path / "run"))
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for name in ("model.safetensors", "model.json", "metrics.json", "loss.png", "accuracy.png",
                 "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0, name
    ckpt = load_checkpoint(out)
    meta = json.loads((out / "model.json").read_text())
    assert ckpt.classes == meta["classes"] and len(ckpt.classes) == 8
    assert meta["preprocessing"]["img_size"] == 48
    assert meta["training"]["data_fingerprint"]["train"]["n"] == 2495


def test_resume_continues_a_stopped_run(fer_mini: Path, tmp_path: Path) -> None:
    """A run stopped after epoch 1 (here: a 1-epoch schedule) continues from its saved state."""
    out = tmp_path / "run"
    train(_cfg(fer_mini, out, schedule=[(48, 1)]))
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["epoch"] == 1
    train(_cfg(fer_mini, out, schedule=[(48, 1), (64, 1)], img_size=64), resume=True)
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [h["img_size"] for h in history] == [48, 64]


def test_schedule_parsing_and_bad_schedule() -> None:
    assert parse_schedule("96:20,224:2") == [(96, 20), (224, 2)]
    with pytest.raises(EdgeFerError, match="SIZE:EPOCHS"):
        parse_schedule("96x20")


def test_cpu_autocast_only_where_it_is_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 on a CPU slows small inputs down (benchmarks/results/2core-amx-train_speed.md): fp32 below 96 px."""
    monkeypatch.setattr("edge_fer.platform.has_bf16", lambda: True)
    assert amp_dtype("cpu", 64) is None
    assert amp_dtype("cpu", CPU_BF16_MIN_SIZE) is torch.bfloat16
    monkeypatch.setattr("edge_fer.platform.has_bf16", lambda: False)
    assert amp_dtype("cpu", 224) is None


def test_checkpoint_with_mismatched_metadata_is_a_clear_error(tiny_checkpoint: Path) -> None:
    meta_path = tiny_checkpoint / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["architecture"]["width"] = 0.5
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(EdgeFerError, match="do not match the architecture"):
        load_checkpoint(tiny_checkpoint)


def test_eval_cli_writes_json_and_png(tiny_checkpoint: Path, fer_mini: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(tiny_checkpoint), "--data", str(fer_mini / "test"),
                                      "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 546 and len(metrics["confusion"]) == 8
    assert (tmp_path / "ev" / "confusion_matrix.png").stat().st_size > 0


def test_cli_bad_data_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no train/ folder" in result.output and "Traceback" not in result.output


def test_v2_head_votes_init_and_bn_recalibration(fer_mini: Path, tmp_path: Path) -> None:
    """BN-neck linear head on vote distributions, then a fine-tune at another size from it (--init)."""
    first = train(_cfg(fer_mini, tmp_path / "a", epochs=1, head="linear", neck="bn", labels="votes",
                       logit_adjust=1.0))
    meta = json.loads((first / "model.json").read_text())
    assert meta["architecture"]["head"] == "linear" and meta["architecture"]["neck"] == "bn"
    assert 0.0 <= meta["metrics"]["val"]["macro_recall"] <= 1.0
    assert "near_tie_share" in meta["metrics"]["val"]["margins"]
    tuned = train(_cfg(fer_mini, tmp_path / "b", schedule=[(64, 1)], img_size=64, head="linear", neck="bn",
                       init=str(first), recalibrate_bn=64))
    assert load_checkpoint(tuned).preprocessing.img_size == 64
    history = json.loads((tuned / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1]  # epoch 0: recalibrated only, a candidate on val too
    with pytest.raises(EdgeFerError, match="architecture differs"):
        train(_cfg(fer_mini, tmp_path / "c", epochs=1, init=str(first)))  # cosine head vs the linear one


def test_checkpoint_files_get_the_usual_permissions(tiny_checkpoint: Path) -> None:
    """Written through a mkstemp temp file (0600), renamed into place with the umask's permissions."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.safetensors", "model.json"):
        assert (tiny_checkpoint / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_ema_ships_the_weight_average_and_resumes_it(fer_mini: Path, tmp_path: Path) -> None:
    """--ema: the checkpoint holds the average (not the last weights); a resumed run continues the same average."""
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "run"
    train(_cfg(fer_mini, out, schedule=[(48, 1)], ema=0.9))
    state = load_file(str(out / "last" / "state.safetensors"))
    assert float(state["ema.n_averaged"]) > 0
    shipped = load_checkpoint(out).model.state_dict()
    name = next(k for k in shipped if k.endswith("weight") and shipped[k].ndim == 4)
    assert torch.equal(shipped[name], state["ema.module." + name])
    assert not torch.equal(shipped[name], state["model." + name])
    steps = float(state["ema.n_averaged"])
    train(_cfg(fer_mini, out, schedule=[(48, 2)], ema=0.9), resume=True)
    resumed = load_file(str(out / "last" / "state.safetensors"))
    assert float(resumed["ema.n_averaged"]) == 2 * steps


def test_mirror_average_and_random_erasing_fine_tune(fer_mini: Path, tmp_path: Path) -> None:
    """``--init`` takes a single-view checkpoint for a mirror-averaging run (no weight differs); the flag ships
    in model.json, and random erasing trains."""
    first = train(_cfg(fer_mini, tmp_path / "a", epochs=1))
    tuned = train(_cfg(fer_mini, tmp_path / "b", epochs=1, init=str(first), mirror_average=True, erase=0.5))
    meta = json.loads((tuned / "model.json").read_text())
    assert meta["architecture"]["mirror_average"] is True and meta["training"]["config"]["erase"] == 0.5
    assert load_checkpoint(tuned).config.mirror_average
