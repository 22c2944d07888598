"""FERNet: the seed's reference network (MobileNet-style, CBAM, cosine or linear head).

``FERNet.features`` holds one module per row of the seed's architecture table,
in the table's order, so a test can walk it and check each row's input size.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from edge_fer.model.layers import ConvBNReLU, batchnorm_affine, make_attention, make_head, make_neck

# (depthwise stride, pointwise output channels, attention after the pair?) for
# each depthwise-separable pair of the seed's table, after the 3->32 stem.
SEED_STACK: tuple[tuple[int, int, bool], ...] = (
    (1, 64, False),
    (2, 128, False),
    (1, 128, False),
    (2, 256, True),
    (1, 256, False),
    (2, 512, True),
    (1, 512, True),
    (2, 1024, False),
    (1, 1024, True),
)


def scaled(channels: int, width: float) -> int:
    """Channels times the width multiplier, rounded to a multiple of 8 (SIMD friendly)."""
    return max(8, int(channels * width + 4) // 8 * 8)


@dataclass(frozen=True)
class FERNetConfig:
    """Everything needed to rebuild the architecture; stored in every checkpoint."""

    num_classes: int = 7
    img_size: int = 224
    width: float = 1.0
    attention: str = "cbam"
    reduction: int = 16
    head_scale: float = 30.0  # cosine head only
    stem_channels: int = 32
    stack: tuple[tuple[int, int, bool], ...] = field(default=SEED_STACK)
    head: str = "cosine"  # "cosine" (ArcFace-style, scale * cos) | "linear" (the seed's FC, plain logits)
    neck: str = "none"  # "none" | "bn": BatchNorm1d between the pooled embedding and the head
    mirror_average: bool = False  # inference: average the logits of each face and its mirror image

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FERNetConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown architecture fields {sorted(unknown)}")
        data = dict(data)
        if "stack" in data:
            data["stack"] = tuple((int(s), int(c), bool(a)) for s, c, a in data["stack"])
        return cls(**data)

    @property
    def embedding_dim(self) -> int:
        return scaled(self.stack[-1][1], self.width)


class FERNet(nn.Module):
    """The seed's FER CNN; ``forward`` returns plain logits (``scale * cos``)."""

    def __init__(self, config: FERNetConfig) -> None:
        super().__init__()
        self.config = config
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        ch = scaled(config.stem_channels, config.width)
        layers["stem"] = ConvBNReLU(3, ch, 3, stride=2)
        n_attn = 0
        for i, (stride, out, attend) in enumerate(config.stack, start=1):
            out_ch = scaled(out, config.width)
            layers[f"dw{i}"] = ConvBNReLU(ch, ch, 3, stride=stride, groups=ch)
            layers[f"pw{i}"] = ConvBNReLU(ch, out_ch, 1)
            ch = out_ch
            if attend and config.attention != "none":
                n_attn += 1
                layers[f"{config.attention}{n_attn}"] = make_attention(config.attention, ch, config.reduction)
        self.features = nn.Sequential(layers)
        self.neck = make_neck(config.neck, ch)
        self.head = make_head(config.head, ch, config.num_classes, config.head_scale)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled embedding (1024-d at width 1.0), before the neck."""
        return self.features(images).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits; with ``mirror_average`` (eval only) the mean of the face's and its mirror image's.

        Faces are left-right symmetric but a CNN's decisions are not: averaging the two views is
        test-time augmentation baked into the graph, so every backend runs it. Training sees mirrors
        through augmentation and runs one view (half the cost).
        """
        if self.config.mirror_average and not self.training:
            both = self._logits(torch.cat([images, images.flip(3)]))
            return both.reshape(2, -1, self.config.num_classes).mean(0)
        return self._logits(images)

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        emb = self.embed(images)
        if isinstance(self.neck, nn.BatchNorm1d) and not self.training:
            # Eval: the neck is an affine map; fold it into the head so exports stay a plain classifier.
            return self.head.forward_affine(emb, *batchnorm_affine(self.neck))
        return self.head(self.neck(emb))


def count_macs(model: FERNet, img_size: int | None = None) -> int:
    """Multiply-accumulates of one forward pass of convolutions and the head.

    Counted from the real layer shapes with forward hooks, so it follows any
    width, attention or input size. Elementwise ops (BN, ReLU, sigmoid,
    attention products) are not MACs and are left out, as is customary.
    Per input image: both views of a ``mirror_average`` model.
    """
    size = img_size or model.config.img_size
    total = 0

    def hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += out.numel() * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            emb = model.embed(torch.zeros(1, 3, size, size))
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    views = 2 if model.config.mirror_average else 1  # a mirror-averaging model runs every face twice
    return views * (total + emb.shape[1] * model.config.num_classes)
