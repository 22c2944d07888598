"""Training-step throughput of FERNet on this machine: input size x autocast x memory format.

    python benchmarks/train_speed.py --sizes 48,64,96,112 --steps 6 -o benchmarks/results/NAME-train_speed

Measures one full training step (forward, FERLoss, backward, AdamW step) on a
batch of real-sized random input, and separately the per-batch data work the
trainer does (augment + preprocess of 48x48 FER crops), so a profile shows where
the time goes.  Medians over ``--steps`` timed steps after 2 warm-up steps.
Writes JSON + Markdown; the CPU is named in both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from edge_fer import platform as host
from edge_fer.data.augment import Augment
from edge_fer.data.preprocessing import Preprocessing, preprocess
from edge_fer.model.fernet import FERNet, FERNetConfig
from edge_fer.model.losses import FERLoss
from edge_fer.train.trainer import TrainStep


def step_time(size: int, batch: int, amp: torch.dtype | None, channels_last: bool, steps: int) -> float:
    """Median seconds of one training step."""
    torch.manual_seed(0)
    model = FERNet(FERNetConfig(num_classes=8, img_size=size, head="linear", neck="bn"))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    loss = FERLoss(8, model.config.embedding_dim, head="linear")
    step = TrainStep(model, loss, amp).train()
    opt = torch.optim.AdamW(list(model.parameters()) + list(loss.parameters()), lr=1e-3)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 8, (batch,))
    target = torch.nn.functional.one_hot(y, 8).float()
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        total, _ = step(x, target, y, 0.0)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def data_time(size: int, batch: int, steps: int) -> float:
    """Median seconds to augment and preprocess one batch of 48x48 crops, as the trainer does."""
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(batch)]
    augment, spec = Augment(), Preprocessing(size)
    times = []
    for _ in range(steps + 2):
        t0 = time.perf_counter()
        preprocess([augment(c, rng) for c in crops], spec)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="48,64,96,112")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-o", "--out", type=Path, required=True, help="Output prefix (.json and .md are added)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    amps: list[tuple[str, torch.dtype | None]] = [("fp32", None)]
    if host.has_bf16():
        amps.append(("bf16", torch.bfloat16))
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        data_s = data_time(size, args.batch, args.steps)
        for amp_name, amp in amps:
            for channels_last in (True, False):
                t = step_time(size, args.batch, amp, channels_last, args.steps)
                rows.append({"size": size, "autocast": amp_name, "channels_last": channels_last,
                             "step_ms": round(t * 1000, 1), "img_per_s": round(args.batch / t, 1),
                             "data_ms": round(data_s * 1000, 2)})
                print(rows[-1], flush=True)
    machine = {"cpu": host.cpu_name(), "flags": host.summary(), "threads": args.threads,
               "torch": torch.__version__, "bf16_autocast_available": host.has_bf16()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "batch": args.batch, "rows": rows},
                                                        indent=2) + "\n")
    lines = [f"# Training step throughput ({machine['cpu']}, {args.threads} threads, batch {args.batch})", "",
             f"torch {torch.__version__}; CPU flags: {machine['flags']}. One step = forward + FERLoss + backward + "
             "AdamW; data = augment + preprocess of one batch of 48x48 crops (per-image OpenCV work).", "",
             "| size | autocast | channels_last | step ms | img/s | data ms per batch |",
             "|---:|---|---|---:|---:|---:|"]
    lines += [f"| {r['size']} | {r['autocast']} | {r['channels_last']} | {r['step_ms']} | {r['img_per_s']} | "
              f"{r['data_ms']} |" for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
