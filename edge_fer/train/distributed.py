"""Data-parallel training on several devices under ``torchrun`` (PyTorch DDP).

``torchrun --nproc_per_node N -m edge_fer.cli train ...`` starts one process per
device and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``.  Without them (a plain
``edge-fer train``) the world has size 1 and every helper here is a no-op, so the
single-process run keeps exactly its old code path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from edge_fer.artifacts.errors import EdgeFerError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0 alone validates, writes files and prints, so outputs exist once."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> World:
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1)))


@contextmanager
def process_group(device: str) -> Iterator[World]:
    """Join the torchrun process group for the body (NCCL on CUDA, Gloo on CPU), then leave it."""
    world = World.from_env()
    if world.size == 1:
        yield world
        return
    if device == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise EdgeFerError(f"torchrun LOCAL_RANK {world.local_rank} but only {torch.cuda.device_count()} "
                               "CUDA device(s) visible; use --nproc_per_node <= the GPU count")
        # Plain "cuda" (autocast, .to) then means this rank's own GPU.
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    try:
        yield world
    finally:
        dist.destroy_process_group()


def data_parallel(module: nn.Module, world: World, device: str) -> nn.Module:
    """``module`` wrapped in DDP when there are several processes: its forward then all-reduces gradients."""
    if world.size == 1:
        return module
    return DistributedDataParallel(module, device_ids=[world.local_rank] if device == "cuda" else None)


def barrier(world: World) -> None:
    """Park the other ranks while rank 0 validates and writes.

    They wait here, at a named point, rather than inside the next epoch's first
    gradient all-reduce.
    """
    if world.size > 1:
        dist.barrier(device_ids=[world.local_rank] if dist.get_backend() == "nccl" else None)


def sum_over_ranks(values: list[float], world: World, device: str) -> list[float]:
    """Element-wise sums over all ranks, so the logged train loss/accuracy cover every shard, not rank 0's."""
    if world.size == 1:
        return values
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()
