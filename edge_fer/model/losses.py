"""ArcFace (additive angular margin) and Center loss, as in the seed, and the softmax alternative.

Scale choice: the seed's s=64 comes from face *identification* with thousands of
classes; with 7-8 classes s=64 saturates the softmax (p~1 after a few steps) and
training becomes unstable, so the cosine head's default is s=30.

:class:`FERLoss` is the one training objective for either head: cross-entropy
against a target *distribution* (one-hot majority labels or FER+'s annotator
votes), ArcFace's margin on the majority class when the head is a cosine head,
optional logit adjustment for the skewed class prior, plus lambda * Center loss.
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


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean of ``-sum(target * log_softmax(logits))``.

    With one-hot targets and ``sample_weight = class_weight[y]`` this equals
    ``F.cross_entropy(logits, y, weight=class_weight)``.
    """
    per_sample = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    return (per_sample * sample_weight).sum() / sample_weight.sum().clamp_min(1e-12)


class FERLoss(nn.Module):
    """``CE(head logits [+ ArcFace margin] [+ tau log prior], target distribution) + lambda * Center``.

    * ``head="cosine"``: the head output is the cosine matrix; the margin goes on the majority class.
    * ``head="linear"``: the head output already is the logits (plain softmax cross-entropy).
    * ``logit_adjust`` (tau, Menon et al. 2021): the loss sees ``logits + tau * log(prior)``; the model's
      own logits are left unadjusted, so inference leans towards rare classes by that prior.
    * Center loss acts on the L2-normalised features the head sees.
    """

    def __init__(self, num_classes: int, dim: int, head: str = "cosine", margin: float = 0.35,
                 scale: float = 30.0, center_weight: float = 0.1, class_weight: torch.Tensor | None = None,
                 log_prior: torch.Tensor | None = None, logit_adjust: float = 0.0) -> None:
        super().__init__()
        if head not in ("cosine", "linear"):
            raise ValueError(f"unknown head {head!r}: use cosine or linear")
        self.head, self.margin, self.scale = head, margin, scale
        self.center = CenterLoss(num_classes, dim)
        self.center_weight = center_weight
        self.register_buffer("class_weight", class_weight if class_weight is not None else torch.ones(num_classes))
        adjust = logit_adjust * log_prior if (log_prior is not None and logit_adjust) else torch.zeros(num_classes)
        self.register_buffer("adjust", adjust.float())

    def logits(self, head_out: torch.Tensor) -> torch.Tensor:
        """Inference logits from the head output (what the exported model returns)."""
        return self.scale * head_out if self.head == "cosine" else head_out

    def forward(self, head_out: torch.Tensor, features: torch.Tensor, target: torch.Tensor, y: torch.Tensor,
                margin: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Total loss and its cross-entropy and Center parts; ``y`` is the majority class of each target."""
        if self.head == "cosine":
            logits = arcface_logits(head_out, y, self.margin if margin is None else margin, self.scale)
        else:
            logits = head_out
        ce = soft_cross_entropy(logits + self.adjust, target, self.class_weight[y])
        cen = self.center(F.normalize(features.float(), dim=1), y)
        return ce + self.center_weight * cen, ce, cen
