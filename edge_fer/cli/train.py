"""``edge-fer train`` and ``edge-fer eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_fer.cli.app import app, checkpoint_path, console, finite, positive, user_errors


@app.command()
@user_errors
def train(
    data: Annotated[Path, typer.Option(help="Dataset root: DATA/{train,val,test}/<class>/*.png (val optional)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the checkpoint and figures")] = Path(
        "runs/train"),
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (ignored when --schedule is given)")] = 40,
    schedule: Annotated[str, typer.Option(
        help="Resolution schedule SIZE:EPOCHS,..., e.g. 96:20,224:2; the last size must equal --img-size")] = "",
    batch_size: Annotated[int, typer.Option(
        min=1, help="Images per step (per process under torchrun: global batch = batch size x processes)")] = 64,
    lr: Annotated[float, typer.Option(
        callback=positive, help="Peak AdamW learning rate (warm-up 1 epoch, then cosine)")] = 2e-3,
    img_size: Annotated[int, typer.Option(
        min=32, max=1024, help="Input size the model runs at (FER+ crops are 48 px)")] = 64,
    width: Annotated[float, typer.Option(
        callback=positive, max=4.0, help="Width multiplier on every layer's channels")] = 1.0,
    attention: Annotated[str, typer.Option(help="cbam | se | none")] = "cbam",
    head: Annotated[str, typer.Option(help="cosine (ArcFace + Center, the seed's) | linear (softmax + Center)")
                    ] = "cosine",
    neck: Annotated[str, typer.Option(help="none | bn: BatchNorm1d on the pooled embedding (folded at export)")
                    ] = "bn",
    labels: Annotated[str, typer.Option(
        help="majority | votes: train on FER+ annotator vote distributions (labels.csv); val/test use majority")
                      ] = "votes",
    logit_adjust: Annotated[float, typer.Option(
        callback=finite,
        help="tau of the logit-adjusted loss (train logits + tau*log prior): lifts rare-class recall; 0 = off")
                            ] = 0.0,
    margin: Annotated[float, typer.Option(
        callback=finite, min=0.0, max=1.5, help="ArcFace additive angular margin (radians; cosine head)")] = 0.1,
    scale: Annotated[float, typer.Option(callback=positive, help="ArcFace / cosine-head scale s")] = 16.0,
    center_weight: Annotated[float, typer.Option(
        callback=finite, min=0.0, help="lambda of the Center loss term")] = 0.1,
    center_lr: Annotated[float, typer.Option(
        callback=finite, min=0.0, help="SGD learning rate of the class centres")] = 0.5,
    balance: Annotated[str, typer.Option(help="Class weights: none | sqrt | full (sklearn 'balanced')")] = "sqrt",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for splits, augmentation and init")] = 0,
    amp: Annotated[bool, typer.Option(
        help="bf16/fp16 autocast where the hardware supports it and it is faster (CPU: from 96 px up)")] = True,
    limit_per_class: Annotated[int, typer.Option(min=0, help="Use at most N train images per class (quick runs)")] = 0,
    keep_near_dups: Annotated[bool, typer.Option(
        help="Keep train images that labels.csv marks as duplicates of val/test images")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run saved in OUT/last")] = False,
    init: Annotated[Path | None, typer.Option(
        help="Fine-tune: start from this checkpoint's weights (same architecture, any input size)")] = None,
    recalibrate_bn: Annotated[int, typer.Option(
        min=0,
        help="Re-estimate BatchNorm statistics on N train images before epoch 1 and at each new schedule size")
                              ] = 0,
    mirror_average: Annotated[bool, typer.Option(
        help="The model averages each face with its mirror image at inference (2 passes; val uses it too)")] = False,
    erase: Annotated[float, typer.Option(
        callback=finite, min=0.0, max=1.0,
        help="Random erasing: probability of hiding one random patch of each training image (0 = off)")] = 0.0,
    ema: Annotated[float, typer.Option(
        callback=finite, min=0.0, max=0.99999,
        help="Validate and ship an exponential moving average of the weights (decay per step, e.g. 0.999); 0 = off")
               ] = 0.0,
) -> None:
    """Train FERNet (the seed's CNN) with ArcFace + Center loss; writes model.safetensors + model.json.

    Several GPUs (DDP, one process each): torchrun --nproc_per_node N -m edge_fer.cli train ...
    """
    from edge_fer.train.config import TrainConfig, check_config, parse_schedule
    from edge_fer.train.trainer import train as run_train

    stages = parse_schedule(schedule) if schedule else []
    cfg = TrainConfig(data=str(data), out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, img_size=img_size,
                      schedule=stages, width=width, attention=attention, head=head, neck=neck,
                      labels=labels, logit_adjust=logit_adjust, margin=margin, scale=scale,
                      center_weight=center_weight, center_lr=center_lr, balance=balance, seed=seed, device=device,
                      amp=amp, limit_per_class=limit_per_class, keep_near_dups=keep_near_dups,
                      init=str(init) if init else "", recalibrate_bn=recalibrate_bn,
                      mirror_average=mirror_average, erase=erase, ema=ema)
    check_config(cfg, schedule)
    run_train(cfg, resume=resume, console=console)


@app.command("eval")
@user_errors
def evaluate(
    data: Annotated[Path, typer.Option(help="Labelled folder DATA/<class>/*.png, e.g. ../shared/data/ferplus/test")],
    checkpoint: Annotated[Path | None, typer.Argument(help="Checkpoint (default: the shipped reference model)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write metrics.json + confusion_matrix.png here")
                   ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass")] = 64,
) -> None:
    """Accuracy, per-class recall and confusion matrix of a checkpoint on a labelled folder."""
    from edge_fer.train.evaluate import evaluate_checkpoint

    evaluate_checkpoint(checkpoint_path(checkpoint), data, out, batch_size, console)
