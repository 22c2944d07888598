"""Small, composable building blocks of FERNet.

Every block takes its channel counts and options explicitly, so the network
definition in :mod:`edge_fer.model.fernet` reads like the seed's table.  All blocks are
export-friendly: no data-dependent control flow, no in-place ops, and global
reductions (``mean``/``amax`` over H, W) instead of fixed-kernel pooling, so one
ONNX graph runs at any input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv + BatchNorm + ReLU: the seed's unit for every convolution.

    ``groups == in_ch`` makes it a depthwise convolution.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        )


class ChannelAttention(nn.Module):
    """CBAM channel attention: a shared MLP over the avg- and max-pooled map.

    The MLP is two 1x1 convolutions rather than Linear layers so the graph stays
    NCHW end to end (no Flatten/Reshape/Transpose around the attention, which
    runtimes otherwise keep in float between quantized convolutions).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.mlp = _bottleneck(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        mx = x.amax(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.mlp(avg) + self.mlp(mx))



def _bottleneck(channels: int, reduction: int) -> nn.Sequential:
    """1x1 conv down to ``channels / reduction`` (at least 8), ReLU, 1x1 conv back: the CBAM and SE gate MLP."""
    hidden = max(channels // reduction, 8)
    return nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=True), nn.ReLU(),
                         nn.Conv2d(hidden, channels, 1, bias=True))


class SpatialAttention(nn.Module):
    """CBAM spatial attention: a 7x7 conv over the channel mean and max."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Sequential):
    """Convolutional Block Attention Module (Woo et al., 2018): channel, then spatial."""

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__(ChannelAttention(channels, reduction), SpatialAttention(spatial_kernel))


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al., 2018), the seed's alternative to CBAM."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc = _bottleneck(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))


def make_attention(kind: str, channels: int, reduction: int) -> nn.Module:
    """The attention block named by ``kind`` ("cbam", "se" or "none")."""
    if kind == "cbam":
        return CBAM(channels, reduction)
    if kind == "se":
        return SqueezeExcite(channels, reduction)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown attention {kind!r}: use cbam, se or none")


class CosineHead(nn.Module):
    """ArcFace-style classifier: ``scale * cos(embedding, class weight)``.

    At inference these scaled cosines are ordinary logits, so every exported
    engine is a plain classifier; training adds the angular margin in the loss
    (:class:`edge_fer.model.losses.FERLoss`) on :meth:`cosine`.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.scale = scale

    def cosine(self, embedding: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(embedding, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.scale * self.cosine(embedding)

    def forward_affine(self, embedding: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Logits of ``embedding * scale + shift`` (an eval-mode BatchNorm neck); the cosine cannot absorb it."""
        return self(embedding * scale + shift)


class LinearHead(nn.Linear):
    """The seed's FC classifier (plain logits), trained with softmax cross-entropy."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__(in_features, num_classes)

    def forward_affine(self, embedding: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Logits of ``embedding * scale + shift`` with the affine folded into the weights.

        Computed from parameters and buffers only, so the ONNX exporter constant-folds it: an exported
        model with a BatchNorm neck is one Gemm after the pooling, a plain-logits classifier.
        """
        return F.linear(embedding, self.weight * scale, self.bias + self.weight @ shift)


def batchnorm_affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with ``bn(x) == x * scale + shift`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def make_head(kind: str, in_features: int, num_classes: int, scale: float) -> CosineHead | LinearHead:
    """The classifier named by ``kind``: "cosine" (ArcFace-style) or "linear" (the seed's FC)."""
    if kind == "cosine":
        return CosineHead(in_features, num_classes, scale)
    if kind == "linear":
        return LinearHead(in_features, num_classes)
    raise ValueError(f"unknown head {kind!r}: use cosine or linear")


def make_neck(kind: str, features: int) -> nn.Module:
    """What sits between the pooled embedding and the head: "none" or "bn" (BatchNorm1d, the BNNeck)."""
    if kind == "bn":
        return nn.BatchNorm1d(features)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown neck {kind!r}: use none or bn")
