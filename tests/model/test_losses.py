"""ArcFace and Center loss on hand-computed cases."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edge_fer.model.losses import CenterLoss, FERLoss, arcface_logits


def test_margin_lowers_only_the_target_logit_by_the_angle() -> None:
    theta = 1.0
    cos = torch.tensor([[math.cos(theta), 0.2, -0.1]])
    out = arcface_logits(cos, torch.tensor([0]), margin=0.35, scale=30.0)
    assert math.isclose(out[0, 0].item(), 30 * math.cos(theta + 0.35), rel_tol=1e-5)
    assert torch.allclose(out[0, 1:], 30 * cos[0, 1:])


def test_fallback_where_theta_plus_margin_exceeds_pi() -> None:
    m = 0.5
    theta = math.pi - 0.2  # theta + m > pi: cos(theta + m) would *increase* the logit
    cos = torch.tensor([[math.cos(theta), 0.0]])
    out = arcface_logits(cos, torch.tensor([0]), margin=m, scale=1.0)
    expected = math.cos(theta) - math.sin(math.pi - m) * m
    assert math.isclose(out[0, 0].item(), expected, rel_tol=1e-5)
    assert out[0, 0].item() < math.cos(theta)


def test_zero_margin_is_plain_scaled_softmax() -> None:
    cos = torch.tensor([[0.3, -0.2, 0.9]])
    y = torch.tensor([1])
    _, ce, _ = FERLoss(3, 2, head="cosine", margin=0.0, scale=10.0, center_weight=0.0)(
        cos, torch.zeros(1, 2), F.one_hot(y, 3).float(), y)
    assert torch.allclose(ce, F.cross_entropy(10 * cos, y))


def test_center_loss_is_zero_at_the_centres_and_half_squared_distance_otherwise() -> None:
    loss = CenterLoss(3, 2)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    y = torch.tensor([0, 2])
    assert loss(loss.centers[y].detach(), y).item() == 0.0
    x = torch.tensor([[1.0, 2.0], [1.0, 1.0]])  # distances^2: 4 and 0
    assert math.isclose(loss(x, y).item(), 0.5 * (4 + 0) / 2)


def test_gradients_reach_embedding_head_and_centres() -> None:
    torch.manual_seed(0)
    emb = torch.randn(4, 8, requires_grad=True)
    weight = torch.randn(3, 8, requires_grad=True)
    cos = F.linear(F.normalize(emb), F.normalize(weight))
    loss_fn = FERLoss(3, 8, head="cosine", center_weight=0.5)
    y = torch.tensor([0, 1, 2, 0])
    total, arc, cen = loss_fn(cos, emb, F.one_hot(y, 3).float(), y)
    total.backward()
    assert math.isclose(total.item(), arc.item() + 0.5 * cen.item(), rel_tol=1e-6)
    for grad in (emb.grad, weight.grad, loss_fn.center.centers.grad):
        assert grad is not None and grad.abs().sum() > 0


def test_fer_loss_one_hot_equals_weighted_cross_entropy_and_logit_adjust_shifts_it() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 0, 0, 1])
    onehot = F.one_hot(y, 3).float()
    w = torch.tensor([0.5, 1.0, 2.0])
    loss = FERLoss(3, 4, head="linear", center_weight=0.0, class_weight=w)
    _, ce, _ = loss(logits, torch.randn(6, 4), onehot, y)
    assert torch.allclose(ce, F.cross_entropy(logits, y, weight=w), atol=1e-6)
    prior = torch.tensor([0.7, 0.2, 0.1])
    adjusted = FERLoss(3, 4, head="linear", center_weight=0.0, log_prior=prior.log(), logit_adjust=1.0)
    _, ce_adj, _ = adjusted(logits, torch.randn(6, 4), onehot, y)
    assert torch.allclose(ce_adj, F.cross_entropy(logits + prior.log(), y), atol=1e-6)


def test_fer_loss_soft_targets_and_cosine_margin_on_majority_class() -> None:
    cos = torch.tensor([[0.5, 0.2, -0.1]])
    y = torch.tensor([0])
    soft = torch.tensor([[0.6, 0.4, 0.0]])
    loss = FERLoss(3, 2, head="cosine", margin=0.2, scale=10.0, center_weight=0.0)
    _, ce, _ = loss(cos, torch.randn(1, 2), soft, y)
    expected = -(soft * F.log_softmax(arcface_logits(cos, y, 0.2, 10.0), dim=1)).sum()
    assert torch.allclose(ce, expected, atol=1e-6)
    assert torch.allclose(loss.logits(cos), 10.0 * cos)
