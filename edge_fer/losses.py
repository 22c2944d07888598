"""ArcFace (additive angular margin) and Center loss, combined as in the seed.

Scale choice: the seed's s=64 comes from face *identification* with thousands of
classes; with 7-8 classes s=64 saturates the softmax (p~1 after a few steps) and
training becomes unstable, so the default is s=30 with the seed's margin 0.35.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def arcface_logits(cosine: torch.Tensor, target: torch.Tensor, margin: float, scale: float) -> torch.Tensor:
    """``scale * cos(theta + m)`` for the target class, ``scale * cos(theta)`` elsewhere.

    Where ``theta + m > pi`` the angle would wrap and *raise* the logit, so the
    standard fallback ``cos(theta) - m * sin(m)`` (monotonic in theta) is used.
    """
    cos = cosine.clamp(-1.0, 1.0)
    sin = torch.sqrt((1.0 - cos * cos).clamp_min(1e-12))
    phi = cos * math.cos(margin) - sin * math.sin(margin)
    phi = torch.where(cos > math.cos(math.pi - margin), phi, cos - math.sin(math.pi - margin) * margin)
    one_hot = F.one_hot(target, cos.shape[1]).to(cos.dtype)
    return scale * (one_hot * phi + (1.0 - one_hot) * cos)


class ArcFaceLoss(nn.Module):
    """Cross-entropy over ArcFace logits, with optional class weights."""

    def __init__(self, margin: float = 0.35, scale: float = 30.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.margin = margin
        self.scale = scale
        self.register_buffer("weight", weight)

    def forward(self, cosine: torch.Tensor, target: torch.Tensor, margin: float | None = None) -> torch.Tensor:
        m = self.margin if margin is None else margin
        return F.cross_entropy(arcface_logits(cosine, target, m, self.scale), target, weight=self.weight)


class CenterLoss(nn.Module):
    """Center loss (Wen et al., 2016): ``0.5 * mean ||x_i - c_{y_i}||^2``.

    The centres are parameters; give them their own optimizer group and learning
    rate (the paper's alpha), separate from the network's.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, dim) * 0.01)

    def forward(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = features - self.centers[target]
        return 0.5 * (diff * diff).sum(dim=1).mean()


class ArcFaceCenterLoss(nn.Module):
    """``CE(ArcFace logits) + lambda * Center(normalised embedding)``.

    Center loss acts on the L2-normalised embedding, the space the cosine head
    and ArcFace's margin work in; on raw features it would mostly shrink feature
    norms, which the cosine head ignores.
    """

    def __init__(self, num_classes: int, dim: int, margin: float = 0.35, scale: float = 30.0,
                 center_weight: float = 0.1, class_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.arcface = ArcFaceLoss(margin, scale, class_weight)
        self.center = CenterLoss(num_classes, dim)
        self.center_weight = center_weight

    def forward(self, cosine: torch.Tensor, embedding: torch.Tensor, target: torch.Tensor,
                margin: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Total loss, and its ArcFace and Center parts (for logging)."""
        arc = self.arcface(cosine, target, margin)
        cen = self.center(F.normalize(embedding.float(), dim=1), target)
        return arc + self.center_weight * cen, arc, cen
