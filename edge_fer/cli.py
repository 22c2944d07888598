"""The ``edge-fer`` command line: one subcommand per pipeline verb.

Every command turns :class:`EdgeFerError` into one red line and exit code 1;
nothing else in the package imports this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from edge_fer.errors import EdgeFerError

app = typer.Typer(
    help="Take a facial-expression CNN from PyTorch to embedded devices, and prove nothing was lost.\n\n"
    "Pipeline: train -> export -> quantize -> build -> bench; predict runs any artifact on photos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable)


@app.callback()
def _root() -> None:
    """Take a facial-expression CNN from PyTorch to embedded devices, and prove nothing was lost."""


def user_errors(fn: F) -> F:
    """Report EdgeFerError as a single line and exit 1 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeFerError as e:
            console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@user_errors
def train(
    data: Annotated[Path, typer.Option(help="Dataset root: DATA/{train,val,test}/<class>/*.png (val optional)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the checkpoint and figures")] = Path(
        "runs/train"),
    epochs: Annotated[int, typer.Option(help="Epochs (ignored when --schedule is given)")] = 30,
    schedule: Annotated[str, typer.Option(
        help="Resolution schedule SIZE:EPOCHS,..., e.g. 96:20,224:2; the last size must equal --img-size")] = "",
    batch_size: Annotated[int, typer.Option(help="Images per step")] = 64,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate (warm-up 1 epoch, then cosine)")] = 2e-3,
    img_size: Annotated[int, typer.Option(help="Input size the shipped model runs at")] = 224,
    width: Annotated[float, typer.Option(help="Width multiplier on every layer's channels")] = 1.0,
    attention: Annotated[str, typer.Option(help="cbam | se | none")] = "cbam",
    margin: Annotated[float, typer.Option(help="ArcFace additive angular margin (radians)")] = 0.35,
    scale: Annotated[float, typer.Option(help="ArcFace / cosine-head scale s")] = 30.0,
    center_weight: Annotated[float, typer.Option(help="lambda of the Center loss term")] = 0.1,
    center_lr: Annotated[float, typer.Option(help="SGD learning rate of the class centres")] = 0.5,
    balance: Annotated[str, typer.Option(help="Class weights: none | sqrt | full (sklearn 'balanced')")] = "sqrt",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for splits, augmentation and init")] = 0,
    amp: Annotated[bool, typer.Option(help="bf16/fp16 autocast where the hardware supports it")] = True,
    limit_per_class: Annotated[int, typer.Option(help="Use at most N train images per class (quick runs)")] = 0,
    keep_near_dups: Annotated[bool, typer.Option(
        help="Keep train images that labels.csv marks as duplicates of val/test images")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run saved in OUT/last")] = False,
) -> None:
    """Train FERNet (the seed's CNN) with ArcFace + Center loss; writes model.safetensors + model.json."""
    from edge_fer.train import TrainConfig, parse_schedule
    from edge_fer.train import train as run_train

    stages = parse_schedule(schedule) if schedule else []
    if stages and stages[-1][0] != img_size:
        raise EdgeFerError(f"--schedule {schedule!r} ends at {stages[-1][0]}px but --img-size is {img_size}; "
                           f"end the schedule with {img_size}:N")
    if attention not in ("cbam", "se", "none"):
        raise EdgeFerError(f"--attention {attention!r}: use cbam, se or none")
    cfg = TrainConfig(data=str(data), out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, img_size=img_size,
                      schedule=stages, width=width, attention=attention, margin=margin, scale=scale,
                      center_weight=center_weight, center_lr=center_lr, balance=balance, seed=seed, device=device,
                      amp=amp, limit_per_class=limit_per_class, keep_near_dups=keep_near_dups)
    run_train(cfg, resume=resume, console=console)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
