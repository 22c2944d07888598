"""FERNet against the seed's architecture table."""

from __future__ import annotations

import pytest
import torch

from edge_fer.model.fernet import FERNet, FERNetConfig, count_macs
from edge_fer.model.layers import CBAM, SqueezeExcite

# The seed's table, row by row: (row type, input size H, W, C).
SEED_TABLE = [
    ("stem", 224, 3), ("dw", 112, 32), ("pw", 112, 32), ("dw", 112, 64), ("pw", 56, 64),
    ("dw", 56, 128), ("pw", 56, 128), ("dw", 56, 128), ("pw", 28, 128), ("cbam", 28, 256),
    ("dw", 28, 256), ("pw", 28, 256), ("dw", 28, 256), ("pw", 14, 256), ("cbam", 14, 512),
    ("dw", 14, 512), ("pw", 14, 512), ("cbam", 14, 512), ("dw", 14, 512), ("pw", 7, 512),
    ("dw", 7, 1024), ("pw", 7, 1024), ("cbam", 7, 1024),
]


def test_every_row_sees_the_seed_tables_input_size() -> None:
    model = FERNet(FERNetConfig(num_classes=7)).eval()
    seen = []
    x = torch.zeros(1, 3, 224, 224)
    for name, layer in model.features.named_children():
        seen.append((name.rstrip("0123456789"), x.shape[2], x.shape[1]))
        assert x.shape[2] == x.shape[3]
        x = layer(x)
    assert seen == SEED_TABLE
    assert tuple(x.shape) == (1, 1024, 7, 7)  # the "Avg Pool 7x7" row's input
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 7)  # FC 1024x7 -> softmax over 7


def test_parameter_and_mac_counts_match_the_seed() -> None:
    model = FERNet(FERNetConfig(num_classes=7))
    params = sum(p.numel() for p in model.parameters())
    assert params == 2_346_584  # "2.35 M parameters"
    assert count_macs(model) == pytest.approx(359.1e6, rel=1e-3)  # "0.36 GMAC at 224"


def test_attention_choice_width_and_input_size() -> None:
    se = FERNet(FERNetConfig(num_classes=8, attention="se"))
    assert any(isinstance(m, SqueezeExcite) for m in se.modules())
    assert not any(isinstance(m, CBAM) for m in se.modules())
    plain = FERNet(FERNetConfig(num_classes=8, attention="none"))
    assert not any(isinstance(m, CBAM | SqueezeExcite) for m in plain.modules())
    narrow = FERNet(FERNetConfig(num_classes=8, width=0.5, img_size=112)).eval()
    assert narrow.embed(torch.zeros(1, 3, 112, 112)).shape == (1, 512)
    assert narrow(torch.zeros(1, 3, 96, 96)).shape == (1, 8)  # global pooling: any size runs


def test_logits_are_scaled_cosines_and_embedding_is_exposed() -> None:
    model = FERNet(FERNetConfig(num_classes=8, width=0.25, img_size=64)).eval()
    x = torch.randn(3, 3, 64, 64)
    emb = model.embed(x)
    logits = model(x)
    assert torch.allclose(logits, model.config.head_scale * model.head.cosine(emb), atol=1e-5)
    assert logits.abs().max() <= model.config.head_scale + 1e-4


def test_config_round_trips_and_rejects_unknown_fields() -> None:
    cfg = FERNetConfig(num_classes=8, width=0.5, attention="se")
    assert FERNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        FERNetConfig.from_dict({**cfg.to_dict(), "depth": 3})
