"""What one training run is asked for (:class:`TrainConfig`), checked before any work, and the
hardware it runs on (device, autocast type, machine summary for the model card)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field

import torch

from edge_fer import platform as host
from edge_fer.artifacts.errors import EdgeFerError


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/train"
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    img_size: int = 64
    schedule: list[tuple[int, int]] = field(default_factory=list)  # [(img_size, epochs), ...]; empty = all at img_size
    width: float = 1.0
    attention: str = "cbam"
    head: str = "cosine"  # cosine (ArcFace) | linear (softmax cross-entropy)
    neck: str = "bn"  # none | bn
    labels: str = "votes"  # majority | votes (FER+ annotator distribution from labels.csv)
    logit_adjust: float = 0.0  # tau of the logit-adjusted loss (0: off)
    margin: float = 0.1
    scale: float = 16.0
    center_weight: float = 0.1
    center_lr: float = 0.5
    balance: str = "sqrt"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    limit_per_class: int = 0  # >0: use at most this many train images per class (smoke tests)
    val_fraction: float = 0.1
    keep_near_dups: bool = False  # keep train images that duplicate val/test images (FER+ labels.csv flag)
    init: str = ""  # start from this checkpoint's weights (fine-tuning; same architecture), fresh optimizer
    recalibrate_bn: int = 0  # >0: re-estimate BatchNorm statistics on this many train images at every new size
    mirror_average: bool = False  # the model averages each face with its mirror image at inference (val included)
    erase: float = 0.0  # random-erasing probability per training image (augmentation)
    ema: float = 0.0  # >0: validate and ship an exponential moving average of the weights with this decay per step

    def stages(self) -> list[tuple[int, int]]:
        return list(self.schedule) if self.schedule else [(self.img_size, self.epochs)]

    def total_epochs(self) -> int:
        return sum(e for _, e in self.stages())

    def size_at(self, epoch: int) -> int:
        """Input size of 0-based ``epoch``."""
        for size, n in self.stages():
            if epoch < n:
                return size
            epoch -= n
        return self.stages()[-1][0]


CHOICES = {"attention": ("cbam", "se", "none"), "head": ("cosine", "linear"), "neck": ("none", "bn"),
           "labels": ("majority", "votes")}


def check_config(cfg: TrainConfig, schedule: str = "") -> None:
    """Refuse what the CLI cannot (a schedule that does not end at ``img_size``, an unknown choice) before any work."""
    if cfg.schedule and cfg.schedule[-1][0] != cfg.img_size:
        raise EdgeFerError(f"--schedule {schedule!r} ends at {cfg.schedule[-1][0]}px but --img-size is {cfg.img_size}; "
                           f"end the schedule with {cfg.img_size}:N")
    for name, allowed in CHOICES.items():
        value = getattr(cfg, name)
        if value not in allowed:
            raise EdgeFerError(f"--{name} {value!r}: use {', '.join(allowed)}")


def parse_schedule(text: str) -> list[tuple[int, int]]:
    """``"96:20,224:2"`` -> ``[(96, 20), (224, 2)]``."""
    try:
        pairs = [tuple(int(v) for v in part.split(":")) for part in text.split(",") if part.strip()]
        if not pairs or any(len(p) != 2 or p[0] < 32 or p[1] < 1 for p in pairs):
            raise ValueError
    except ValueError:
        raise EdgeFerError(f"--schedule {text!r}: expected SIZE:EPOCHS[,SIZE:EPOCHS...], e.g. 96:20,224:2") from None
    return [(int(a), int(b)) for a, b in pairs]


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgeFerError("--device cuda: no CUDA device visible to PyTorch; use --device cpu")
    return name


# Smallest input at which bf16 autocast beats fp32 for a CPU training step: on an Intel Xeon with AMX
# (benchmarks/results/2core-amx-train_speed.md, channels_last, batch 64) bf16 runs 0.71x fp32's speed at
# 64 px and 0.87x at 80, but 1.13x at 96 and 1.29x at 224; casting costs more than it saves on small maps.
CPU_BF16_MIN_SIZE = 96


def amp_dtype(device: str, img_size: int) -> torch.dtype | None:
    """The autocast type that makes a step at ``img_size`` fastest: bf16 on CUDA Ampere+ (else fp16), bf16 on
    CPUs with AVX-512 BF16/AMX only from ``CPU_BF16_MIN_SIZE`` up, else none (fp32)."""
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if host.has_bf16() and img_size >= CPU_BF16_MIN_SIZE else None


def machine_summary() -> dict:
    out = {"cpu": host.cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
           "torch": torch.__version__}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out
