"""Training FERNet (``edge-fer train``): ArcFace + Center loss (the seed's) or softmax + Center.

Resolution: FER images are 48x48, so the default trains and ships at 64 px, where
the data lives (224 px, the seed's size, is a 4.7x upsample that trains 5-10x
slower).  A schedule can still run most epochs small and a final stage at
``img_size`` (global pooling makes the weights size-agnostic), and ``--init`` with
``--recalibrate-bn`` moves a trained model to another size.  The best checkpoint is chosen on val among epochs run
at ``img_size`` only, so the shipped weights were validated as shipped; "best" is the
mean of accuracy and macro recall, so a run cannot win by ignoring rare classes.

Every epoch writes a resumable state to ``OUT/last/``; ``--resume`` continues it.

Under ``torchrun`` (several processes, DDP) each rank trains on its share of every
epoch with ``batch_size`` images per step (global batch: ``batch_size`` x ranks);
rank 0 alone validates, writes and prints.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from safetensors.torch import load_file, save_file
from torch import nn

from edge_fer import __version__
from edge_fer.artifacts.atomic import atomic_path, write_json
from edge_fer.artifacts.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.plots import plot_confusion, plot_curves
from edge_fer.artifacts.progress import epoch_progress
from edge_fer.data.augment import Augment, class_weights
from edge_fer.data.dataset import FaceFolder, SkipReport, load_images, load_splits, near_duplicate_paths
from edge_fer.data.preprocessing import Preprocessing, preprocess
from edge_fer.data.votes import one_hot, vote_distributions
from edge_fer.model.fernet import FERNet, FERNetConfig
from edge_fer.model.losses import FERLoss
from edge_fer.train.config import TrainConfig, amp_dtype, machine_summary, pick_device
from edge_fer.train.distributed import World, barrier, data_parallel, process_group, sum_over_ranks
from edge_fer.train.ema import WeightAverage
from edge_fer.train.metrics import Metrics, batched_logits, compute_metrics, torch_runner


def _under(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of the resumable state saved under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 5% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class TrainStep(nn.Module):
    """Network and loss as one module whose forward returns the loss.

    DDP all-reduces gradients only for parameters used inside its wrapped module's
    forward; a step runs ``embed``, the neck and the head's training output (the
    cosines of a cosine head) rather than ``FERNet.forward``, and Center loss learns
    its own centres, so the whole step is what gets wrapped.
    """

    def __init__(self, model: FERNet, loss: FERLoss, amp: torch.dtype | None) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.amp = amp

    def forward(self, x: torch.Tensor, target: torch.Tensor, y: torch.Tensor,
                margin: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Total loss and the inference logits, for the accuracy log."""
        with torch.autocast(x.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            emb = self.model.embed(x)
        features = self.model.neck(emb.float())
        head = self.model.head
        head_out = head.cosine(features) if self.loss.head == "cosine" else head(features)
        loss, _, _ = self.loss(head_out, features, target, y, margin)
        return loss, self.loss.logits(head_out)


class Trainer:
    """Holds the model, losses, optimizers and history for one run (fresh or resumed)."""

    def __init__(self, cfg: TrainConfig, console: Console, world: World | None = None) -> None:
        self.cfg = cfg
        self.console = console
        self.world = world or World()
        self.device = pick_device(cfg.device)
        self.amp = amp_dtype(self.device, cfg.img_size) if cfg.amp else None
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
        self.train_images, self.train_labels, kept = self._decode(train)
        self.val_images, self.val_labels, _ = self._decode(splits["val"])
        if len(self.train_images) == 0:
            raise EdgeFerError(f"{cfg.data}: no readable training images")
        self.train_targets, from_votes = self._targets(train.subset(kept))
        if cfg.labels == "votes":
            rest = len(kept) - from_votes
            console.print(f"training on annotator vote distributions for {from_votes} of {len(kept)} images "
                          f"(labels.csv){f'; {rest} on their folder label' if rest else ''}")
        self.pre = Preprocessing(img_size=cfg.img_size)
        arch = FERNetConfig(len(self.classes), cfg.img_size, cfg.width, cfg.attention, head_scale=cfg.scale,
                            head=cfg.head, neck=cfg.neck, mirror_average=cfg.mirror_average)
        self.model = FERNet(arch)
        if cfg.init:
            self._load_init(cfg.init, arch)
        self.model = self.model.to(self.device).to(memory_format=torch.channels_last)
        self.ema = WeightAverage(self.model, cfg.ema) if cfg.ema > 0 else None
        k = len(self.classes)
        weights = torch.from_numpy(class_weights(self.train_labels, k, cfg.balance))
        prior = np.bincount(self.train_labels, minlength=k) / len(self.train_labels)
        self.loss = FERLoss(k, arch.embedding_dim, cfg.head, cfg.margin, cfg.scale, cfg.center_weight, weights,
                            torch.from_numpy(np.log(np.maximum(prior, 1e-6))), cfg.logit_adjust).to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.center_opt = torch.optim.SGD(self.loss.center.parameters(), lr=cfg.center_lr)
        self.train_step = data_parallel(TrainStep(self.model, self.loss, self.amp), self.world, self.device)
        self.steps_per_epoch = math.ceil(len(self.train_images) // self.world.size / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.total_epochs()
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []
        self.best_score = -1.0
        self.wall = 0.0

    def _load_init(self, path: str, arch: FERNetConfig) -> None:
        """Weights of checkpoint ``path``, whose input size (global pooling makes that valid) and mirror averaging
        may differ: neither changes a weight."""
        init = load_checkpoint(path)
        if init.classes != self.classes:
            raise EdgeFerError(f"{path}: --init checkpoint has classes {init.classes}, the data has {self.classes}")
        if replace(init.config, img_size=arch.img_size, mirror_average=arch.mirror_average) != arch:
            raise EdgeFerError(f"{path}: --init checkpoint's architecture differs from the requested one "
                               f"({init.config} vs {arch}); pass matching --width/--attention/--head/--neck/--scale")
        self.model.load_state_dict(init.model.state_dict())

    def recalibrate_batchnorm(self, size: int, count: int) -> None:
        """Re-estimate every BatchNorm's running statistics at ``size`` on ``count`` unaugmented train images.

        Moving a network to another input size shifts its activation statistics; a cumulative
        average over a few thousand images (no gradients) re-centres them cheaply.
        """
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
        pick = self.rng.permutation(len(self.train_images))[:count]
        spec = self.pre.with_size(size)
        self.model.train()
        with torch.no_grad():
            for start in range(0, len(pick), self.cfg.batch_size):
                idx = pick[start:start + self.cfg.batch_size]
                x = torch.from_numpy(preprocess([self.train_images[i] for i in idx], spec)).to(self.device)
                self.model(x.contiguous(memory_format=torch.channels_last))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        if self.ema:
            self.ema.restart(self.model)

    def _decode(self, split: FaceFolder) -> tuple[list[np.ndarray], np.ndarray, list[int]]:
        images, kept = load_images(split.paths, self.skips)
        return images, split.labels[kept], kept

    def _targets(self, split: FaceFolder) -> tuple[np.ndarray, int]:
        """Per-image target distributions: one-hot majority labels, or FER+ votes with ``labels=votes``."""
        if self.cfg.labels == "votes":
            return vote_distributions(self.cfg.data, split.paths, split.labels, self.classes)
        return one_hot(split.labels, len(self.classes)), 0

    # --- resumable state -------------------------------------------------
    def state_dir(self) -> Path:
        return Path(self.cfg.out) / "last"

    def save_state(self) -> None:
        folder = self.state_dir()
        folder.mkdir(parents=True, exist_ok=True)
        optimizers = {"opt": self.opt.state_dict(), "center_opt": self.center_opt.state_dict()}
        parts = {"model.": self.model.state_dict(), "loss.": self.loss.state_dict(),
                 "ema.": self.ema.state_dict() if self.ema else {},
                 **{f"{name}.": {f"{idx}.{key}": torch.as_tensor(val) for idx, st in sd["state"].items()
                                 for key, val in st.items()} for name, sd in optimizers.items()}}
        tensors = {prefix + k: v for prefix, part in parts.items() for k, v in part.items() if v is not None}
        groups = {name: sd["param_groups"] for name, sd in optimizers.items()}
        with atomic_path(folder / "state.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        write_json(folder / "state.json", {
            "config": asdict(self.cfg), "epoch": self.epoch, "step": self.step, "history": self.history,
            "best_score": self.best_score, "wall": self.wall, "param_groups": groups,
            "rng": self.rng.bit_generator.state, "torch_seed": int(torch.initial_seed()),
        })

    def load_state(self) -> None:
        folder = self.state_dir()
        if not (folder / "state.json").is_file():
            raise EdgeFerError(f"{folder}/state.json: nothing to resume; start without --resume")
        meta = json.loads((folder / "state.json").read_text())
        tensors = load_file(str(folder / "state.safetensors"))
        self.model.load_state_dict(_under(tensors, "model."))
        self.loss.load_state_dict(_under(tensors, "loss."), strict=False)
        if self.ema:
            self.ema.load(_under(tensors, "ema."), self.model)
        for name, opt in (("opt", self.opt), ("center_opt", self.center_opt)):
            state: dict[int, dict] = {}
            for k, v in _under(tensors, name + ".").items():
                idx, key = k.split(".", 1)
                state.setdefault(int(idx), {})[key] = v
            opt.load_state_dict({"state": state, "param_groups": meta["param_groups"][name]})
        self.epoch, self.step = meta["epoch"], meta["step"]
        self.history, self.wall = meta["history"], meta["wall"]
        self.best_score = meta.get("best_score", meta.get("best_acc", -1.0))
        self.rng.bit_generator.state = meta["rng"]
        torch.manual_seed(meta["torch_seed"] + self.epoch)

    # --- one epoch ---------------------------------------------------------
    def _margin(self) -> float:
        """ArcFace margin ramps up over the first epoch: a full margin on random features stalls training."""
        return self.cfg.margin * min(1.0, self.step / max(1, self.steps_per_epoch))

    def train_epoch(self, size: int, progress: Progress) -> dict:
        cfg = self.cfg
        spec = self.pre.with_size(size)
        augment = Augment(erase=cfg.erase)
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
            target = torch.from_numpy(self.train_targets[idx]).to(self.device)
            factor = _lr_factor(self.step, self.total_steps, self.steps_per_epoch)
            for group in self.opt.param_groups:
                group["lr"] = cfg.lr * factor
            loss, logits = self.train_step(x, target, y, self._margin())
            self.opt.zero_grad(set_to_none=True)
            self.center_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.center_opt.step()
            if self.ema:
                self.ema.update(self.model)
            self.step += 1
            n = len(idx)
            tot_loss += loss.item() * n
            tot_correct += float((logits.argmax(1) == y).sum())
            seen += n
            progress.update(task, advance=n, info=f"loss {tot_loss / seen:.3f} acc {tot_correct / seen:.3f}")
        progress.remove_task(task)
        tot_loss, tot_correct, seen = sum_over_ranks([tot_loss, tot_correct, seen], world, self.device)
        return {"train_loss": tot_loss / max(seen, 1), "train_acc": tot_correct / max(seen, 1),
                "lr": cfg.lr * _lr_factor(self.step, self.total_steps, self.steps_per_epoch)}

    def shipped_model(self) -> FERNet:
        """The network validated and checkpointed: the weight average with ``--ema``, else the trained one."""
        return self.ema.model if self.ema else self.model

    def validate(self, size: int) -> tuple[float, Metrics]:
        spec = self.pre.with_size(size)
        logits = batched_logits(torch_runner(self.shipped_model(), self.device), self.val_images, spec, 128)
        val_loss = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(self.val_labels)))
        return val_loss, compute_metrics(logits, self.val_labels, self.classes)

    def checkpoint(self, metrics: dict) -> Checkpoint:
        return Checkpoint(self.shipped_model(), self.classes, self.pre, {
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
    if not resume and cfg.recalibrate_bn > 0:
        # Recalibrated but not yet trained: validated as "epoch 0", so val picks it if fine-tuning does not help.
        t0, size = time.perf_counter(), cfg.size_at(0)
        trainer.recalibrate_batchnorm(size, cfg.recalibrate_bn)
        console.print(f"BatchNorm statistics re-estimated at {size} px on {cfg.recalibrate_bn} train images")
        if world.main:
            nan = float("nan")
            _validate_and_write(trainer, {"epoch": 0, "img_size": size, "train_loss": nan, "train_acc": nan,
                                          "lr": 0.0}, size, t0, out, console)
        barrier(world)
    counts = dict(zip(trainer.classes, np.bincount(trainer.train_labels, minlength=len(trainer.classes)).tolist(),
                      strict=True))
    ddp = f", DDP world size {world.size} (global batch {cfg.batch_size * world.size})" if world.size > 1 else ""
    console.print(f"train {len(trainer.train_labels)} images {counts}; val {len(trainer.val_labels)}; "
                  f"device {trainer.device}, autocast {trainer.amp}{ddp}; {trainer.skips.summary()}")
    if cfg.head == "cosine" and cfg.margin > 0:
        console.print(f"the ArcFace margin ramps from 0 to {cfg.margin} over epoch 1, so the training loss "
                      "rises at epoch 2; the kept checkpoint is the best val epoch at --img-size "
                      "(mean of accuracy and macro recall)")
    with epoch_progress(console) as progress:
        while trainer.epoch < cfg.total_epochs():
            size = cfg.size_at(trainer.epoch)
            t0 = time.perf_counter()
            if cfg.recalibrate_bn > 0 and trainer.epoch > 0 and size != cfg.size_at(trainer.epoch - 1):
                trainer.recalibrate_batchnorm(size, cfg.recalibrate_bn)  # a new schedule stage: a new size
            record = {"epoch": trainer.epoch + 1, "img_size": size, **trainer.train_epoch(size, progress)}
            trainer.epoch += 1
            if world.main:
                _validate_and_write(trainer, record, size, t0, out, console)
            barrier(world)
    if world.main:
        if trainer.best_score < 0:  # never reached img_size (schedule without it): ship the last weights
            save_checkpoint(trainer.checkpoint({"val": trainer.validate(cfg.img_size)[1].to_dict()}), out)
        console.print(f"best val score (mean of accuracy and macro recall) {max(trainer.best_score, 0):.3f}; "
                      f"{trainer.skips.summary()}; "
                      f"checkpoint {out / 'model.safetensors'}")
    return out


def _validate_and_write(trainer: Trainer, record: dict, size: int, t0: float, out: Path, console: Console) -> None:
    """End of an epoch on rank 0: validate, keep the best checkpoint, save the resumable state, log."""
    cfg = trainer.cfg
    record["val_loss"], metrics = trainer.validate(size)
    record["val_acc"] = metrics.accuracy
    record["val_macro_recall"] = metrics.macro_recall
    record["val_near_tie_share"] = metrics.margins.get("near_tie_share", float("nan"))
    score = 0.5 * (metrics.accuracy + metrics.macro_recall)
    trainer.wall += time.perf_counter() - t0
    record["wall_s"] = round(trainer.wall, 1)
    trainer.history.append(record)
    if size == cfg.img_size and score > trainer.best_score:
        trainer.best_score = score
        save_checkpoint(trainer.checkpoint({"val": metrics.to_dict(), "best_epoch": trainer.epoch}), out)
        plot_confusion(metrics.confusion, trainer.classes, out / "confusion_matrix.png",
                       f"val, epoch {trainer.epoch} ({metrics.accuracy:.1%})")
    trainer.save_state()
    write_json(out / "metrics.json", {"history": trainer.history, "best_val_score": trainer.best_score,
                                      "best_val_score_is": "mean of val accuracy and val macro recall",
                                      "skipped_images": trainer.skips.skipped})
    plot_curves(trainer.history, ["train_loss", "val_loss"], "loss", out / "loss.png")
    plot_curves(trainer.history, ["train_acc", "val_acc", "val_macro_recall"], "accuracy", out / "accuracy.png")
    console.print(f"epoch {record['epoch']:>3} @{size}px  loss {record['train_loss']:.3f}  "
                  f"train acc {record['train_acc']:.3f}  val acc {record['val_acc']:.3f}  "
                  f"val macro recall {record['val_macro_recall']:.3f}  ({trainer.wall / 60:.1f} min)")
