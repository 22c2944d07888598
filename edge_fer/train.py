"""Training FERNet with ArcFace + Center loss (``edge-fer train``).

Resolution schedule: the shipped model runs at ``img_size`` (224, the seed's),
but FER images are 48x48, so most epochs can run at a lower resolution and a
short final stage at ``img_size`` adapts the network (global pooling makes the
weights size-agnostic).  The best checkpoint is chosen on val among epochs run
at ``img_size`` only, so the shipped weights were validated as shipped.

Every epoch writes a resumable state to ``OUT/last/``; ``--resume`` continues it.

Under ``torchrun`` (several processes, DDP) each rank trains on its share of every
epoch with ``batch_size`` images per step (global batch: ``batch_size`` x ranks);
rank 0 alone validates, writes and prints.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file
from torch import nn

from edge_fer import __version__, hostcpu
from edge_fer.atomic import atomic_path, write_json
from edge_fer.checkpoint import Checkpoint, save_checkpoint
from edge_fer.data.augment import Augment, class_weights
from edge_fer.data.dataset import FaceFolder, SkipReport, load_images, load_splits, near_duplicate_paths
from edge_fer.data.preprocessing import Preprocessing, preprocess
from edge_fer.distributed import World, barrier, data_parallel, process_group, sum_over_ranks
from edge_fer.errors import EdgeFerError
from edge_fer.evaluate import Metrics, batched_logits, compute_metrics, torch_runner
from edge_fer.losses import ArcFaceCenterLoss
from edge_fer.model import FERNet, FERNetConfig
from edge_fer.plots import plot_confusion, plot_curves


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/train"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    img_size: int = 224
    schedule: list[tuple[int, int]] = field(default_factory=list)  # [(img_size, epochs), ...]; empty = all at img_size
    width: float = 1.0
    attention: str = "cbam"
    margin: float = 0.35
    scale: float = 30.0
    center_weight: float = 0.1
    center_lr: float = 0.5
    balance: str = "sqrt"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    limit_per_class: int = 0  # >0: use at most this many train images per class (smoke tests)
    val_fraction: float = 0.1
    keep_near_dups: bool = False  # keep train images that duplicate val/test images (FER+ labels.csv flag)

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


def amp_dtype(device: str) -> torch.dtype | None:
    """bf16 autocast where the hardware has it (CUDA Ampere+, CPUs with AVX-512 BF16/AMX), else fp16 on CUDA."""
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if hostcpu.has_bf16() else None


def machine_summary() -> dict:
    out = {"cpu": hostcpu.cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
           "torch": torch.__version__}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 5% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class TrainStep(nn.Module):
    """Network and loss as one module whose forward returns the loss.

    DDP all-reduces gradients only for parameters used inside its wrapped module's
    forward; a step runs ``embed`` and ``head.cosine`` rather than ``FERNet.forward``,
    and Center loss learns its own centres, so the whole step is what gets wrapped.
    """

    def __init__(self, model: FERNet, loss: ArcFaceCenterLoss, amp: torch.dtype | None) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.amp = amp

    def forward(self, x: torch.Tensor, y: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Total loss and the (unscaled) cosines, for the accuracy log."""
        with torch.autocast(x.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            emb = self.model.embed(x)
        cosine = self.model.head.cosine(emb.float())
        loss, _, _ = self.loss(cosine, emb, y, margin)
        return loss, cosine


class Trainer:
    """Holds the model, losses, optimizers and history for one run (fresh or resumed)."""

    def __init__(self, cfg: TrainConfig, console: Console, world: World | None = None) -> None:
        self.cfg = cfg
        self.console = console
        self.world = world or World()
        self.device = pick_device(cfg.device)
        self.amp = amp_dtype(self.device) if cfg.amp else None
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.skips = SkipReport()
        splits = load_splits(cfg.data, cfg.val_fraction, cfg.seed)
        train = splits["train"]
        if not cfg.keep_near_dups:
            dups = near_duplicate_paths(cfg.data)
            if dups:
                train = train.subset([i for i, p in enumerate(train.paths) if p not in dups])
                console.print(f"dropped {len(splits['train']) - len(train)} train images that duplicate "
                              "val/test images (labels.csv near_dup_in_ferplus_val_test=yes)")
        if cfg.limit_per_class > 0:
            keep = np.concatenate([np.flatnonzero(train.labels == c)[: cfg.limit_per_class]
                                   for c in range(len(train.classes))])
            train = train.subset(np.sort(keep))
        self.classes = train.classes
        self.fingerprint = {name: {"n": len(s), "sha256": s.fingerprint(), "counts": s.counts()}
                            for name, s in splits.items()}
        self.train_images, self.train_labels = self._decode(train, "train")
        self.val_images, self.val_labels = self._decode(splits["val"], "val")
        if len(self.train_images) == 0:
            raise EdgeFerError(f"{cfg.data}: no readable training images")
        self.pre = Preprocessing(img_size=cfg.img_size)
        arch = FERNetConfig(num_classes=len(self.classes), img_size=cfg.img_size, width=cfg.width,
                            attention=cfg.attention, head_scale=cfg.scale)
        self.model = FERNet(arch).to(self.device).to(memory_format=torch.channels_last)
        weights = torch.from_numpy(class_weights(self.train_labels, len(self.classes), cfg.balance))
        self.loss = ArcFaceCenterLoss(len(self.classes), arch.embedding_dim, cfg.margin, cfg.scale,
                                      cfg.center_weight, weights).to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.center_opt = torch.optim.SGD(self.loss.center.parameters(), lr=cfg.center_lr)
        self.train_step = data_parallel(TrainStep(self.model, self.loss, self.amp), self.world, self.device)
        self.steps_per_epoch = math.ceil(len(self.train_images) // self.world.size / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.total_epochs()
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []
        self.best_acc = -1.0
        self.wall = 0.0

    def _decode(self, split: FaceFolder, name: str) -> tuple[list[np.ndarray], np.ndarray]:
        images, kept = load_images(split.paths, self.skips)
        return images, split.labels[kept]

    # --- resumable state -------------------------------------------------
    def state_dir(self) -> Path:
        return Path(self.cfg.out) / "last"

    def save_state(self) -> None:
        folder = self.state_dir()
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"loss.{k}": v for k, v in self.loss.state_dict().items() if v is not None})
        groups = {}
        for name, opt in (("opt", self.opt), ("center_opt", self.center_opt)):
            sd = opt.state_dict()
            for idx, st in sd["state"].items():
                for key, val in st.items():
                    tensors[f"{name}.{idx}.{key}"] = torch.as_tensor(val)
            groups[name] = sd["param_groups"]
        with atomic_path(folder / "state.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        write_json(folder / "state.json", {
            "config": asdict(self.cfg), "epoch": self.epoch, "step": self.step, "history": self.history,
            "best_acc": self.best_acc, "wall": self.wall, "param_groups": groups,
            "rng": self.rng.bit_generator.state, "torch_seed": int(torch.initial_seed()),
        })

    def load_state(self) -> None:
        folder = self.state_dir()
        if not (folder / "state.json").is_file():
            raise EdgeFerError(f"{folder}/state.json: nothing to resume; start without --resume")
        meta = json.loads((folder / "state.json").read_text())
        tensors = load_file(str(folder / "state.safetensors"))
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.loss.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("loss.")}, strict=False)
        for name, opt in (("opt", self.opt), ("center_opt", self.center_opt)):
            state: dict[int, dict] = {}
            for k, v in tensors.items():
                if k.startswith(name + "."):
                    _, idx, key = k.split(".", 2)
                    state.setdefault(int(idx), {})[key] = v
            opt.load_state_dict({"state": state, "param_groups": meta["param_groups"][name]})
        self.epoch, self.step = meta["epoch"], meta["step"]
        self.history, self.best_acc, self.wall = meta["history"], meta["best_acc"], meta["wall"]
        self.rng.bit_generator.state = meta["rng"]
        torch.manual_seed(meta["torch_seed"] + self.epoch)

    # --- one epoch ---------------------------------------------------------
    def _margin(self) -> float:
        """ArcFace margin ramps up over the first epoch: a full margin on random features stalls training."""
        return self.cfg.margin * min(1.0, self.step / max(1, self.steps_per_epoch))

    def train_epoch(self, size: int, progress: Progress) -> dict:
        cfg = self.cfg
        spec = self.pre.with_size(size)
        augment = Augment()
        order = self.rng.permutation(len(self.train_images))
        # Every rank draws this same permutation (same seed, same draws) and takes an equal share of it:
        # equal shares mean equal step counts, so DDP's all-reduces always find all ranks.
        world = self.world
        order = order[:len(order) - len(order) % world.size][world.rank::world.size]
        # One process augments from self.rng as before; under DDP self.rng must stay identical on all ranks
        # (it draws the next permutation), so each rank augments from its own stream, seeded per epoch.
        aug_rng = self.rng if world.size == 1 else np.random.default_rng([cfg.seed, self.epoch, world.rank])
        self.train_step.train()
        task = progress.add_task(f"epoch {self.epoch + 1}/{cfg.total_epochs()} @{size}px",
                                 total=len(order), info="")
        tot_loss = tot_correct = seen = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs 2+ samples
                continue
            batch = preprocess([augment(self.train_images[i], aug_rng) for i in idx], spec)
            x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(self.train_labels[idx]).to(self.device)
            factor = _lr_factor(self.step, self.total_steps, self.steps_per_epoch)
            for group in self.opt.param_groups:
                group["lr"] = cfg.lr * factor
            loss, cosine = self.train_step(x, y, self._margin())
            self.opt.zero_grad(set_to_none=True)
            self.center_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.center_opt.step()
            self.step += 1
            n = len(idx)
            tot_loss += loss.item() * n
            tot_correct += float((cosine.argmax(1) == y).sum())
            seen += n
            progress.update(task, advance=n, info=f"loss {tot_loss / seen:.3f} acc {tot_correct / seen:.3f}")
        progress.remove_task(task)
        tot_loss, tot_correct, seen = sum_over_ranks([tot_loss, tot_correct, seen], world, self.device)
        return {"train_loss": tot_loss / max(seen, 1), "train_acc": tot_correct / max(seen, 1),
                "lr": cfg.lr * _lr_factor(self.step, self.total_steps, self.steps_per_epoch)}

    def validate(self, size: int) -> tuple[float, Metrics]:
        spec = self.pre.with_size(size)
        logits = batched_logits(torch_runner(self.model, self.device), self.val_images, spec, 128)
        y = torch.from_numpy(self.val_labels)
        cos = torch.from_numpy(logits) / self.cfg.scale
        with torch.no_grad():
            val_loss = float(self.loss.arcface(cos.to(self.device), y.to(self.device)))
        return val_loss, compute_metrics(logits, self.val_labels, self.classes)

    def checkpoint(self, metrics: dict) -> Checkpoint:
        return Checkpoint(self.model, self.classes, self.pre, {
            "training": {
                "command": " ".join(["edge-fer", *sys.argv[1:]]) if sys.argv else "",
                "config": asdict(self.cfg),
                "data_fingerprint": self.fingerprint,
                "skipped_images": len(self.skips.skipped),
                "wall_time_s": round(self.wall, 1),
                "machine": machine_summary(),
                "edge_fer_version": __version__,
                "world_size": self.world.size,
                "amp": str(self.amp) if self.amp else "off",
            },
            "metrics": metrics,
        })


def train(cfg: TrainConfig, resume: bool = False, console: Console | None = None) -> Path:
    """Run (or resume) a training; returns the best checkpoint's folder.

    Under ``torchrun`` every rank runs this: ranks other than 0 print nothing and
    wait at a barrier while rank 0 validates and writes.
    """
    with process_group(pick_device(cfg.device)) as world:
        console = (console or Console(stderr=True)) if world.main else Console(quiet=True)
        return _train(cfg, resume, console, world)


def _train(cfg: TrainConfig, resume: bool, console: Console, world: World) -> Path:
    trainer = Trainer(cfg, console, world)
    if resume:
        trainer.load_state()
        console.print(f"resuming at epoch {trainer.epoch + 1}/{cfg.total_epochs()}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = dict(zip(trainer.classes, np.bincount(trainer.train_labels, minlength=len(trainer.classes)).tolist(),
                      strict=True))
    ddp = f", DDP world size {world.size} (global batch {cfg.batch_size * world.size})" if world.size > 1 else ""
    console.print(f"train {len(trainer.train_labels)} images {counts}; val {len(trainer.val_labels)}; "
                  f"device {trainer.device}, autocast {trainer.amp}{ddp}; {trainer.skips.summary()}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        while trainer.epoch < cfg.total_epochs():
            size = cfg.size_at(trainer.epoch)
            t0 = time.perf_counter()
            record = {"epoch": trainer.epoch + 1, "img_size": size, **trainer.train_epoch(size, progress)}
            trainer.epoch += 1
            if world.main:
                _validate_and_write(trainer, record, size, t0, out, console)
            barrier(world)
    if world.main:
        if trainer.best_acc < 0:  # never reached img_size (schedule without it): ship the last weights
            save_checkpoint(trainer.checkpoint({"val": trainer.validate(cfg.img_size)[1].to_dict()}), out)
        console.print(f"best val accuracy {max(trainer.best_acc, 0):.3f}; {trainer.skips.summary()}; "
                      f"checkpoint {out / 'model.safetensors'}")
    return out


def _validate_and_write(trainer: Trainer, record: dict, size: int, t0: float, out: Path, console: Console) -> None:
    """End of an epoch on rank 0: validate, keep the best checkpoint, save the resumable state, log."""
    cfg = trainer.cfg
    record["val_loss"], metrics = trainer.validate(size)
    record["val_acc"] = metrics.accuracy
    trainer.wall += time.perf_counter() - t0
    record["wall_s"] = round(trainer.wall, 1)
    trainer.history.append(record)
    if size == cfg.img_size and metrics.accuracy > trainer.best_acc:
        trainer.best_acc = metrics.accuracy
        save_checkpoint(trainer.checkpoint({"val": metrics.to_dict(), "best_epoch": trainer.epoch}), out)
        plot_confusion(metrics.confusion, trainer.classes, out / "confusion_matrix.png",
                       f"val, epoch {trainer.epoch} ({metrics.accuracy:.1%})")
    trainer.save_state()
    write_json(out / "metrics.json", {"history": trainer.history, "best_val_acc": trainer.best_acc,
                                      "skipped_images": trainer.skips.skipped})
    plot_curves(trainer.history, ["train_loss", "val_loss"], "loss", out / "loss.png")
    plot_curves(trainer.history, ["train_acc", "val_acc"], "accuracy", out / "accuracy.png")
    console.print(f"epoch {record['epoch']:>3} @{size}px  loss {record['train_loss']:.3f}  "
                  f"train {record['train_acc']:.3f}  val {record['val_acc']:.3f}  "
                  f"({trainer.wall / 60:.1f} min)")
