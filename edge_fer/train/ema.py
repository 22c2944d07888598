"""An exponential moving average of the weights: what gets validated and shipped when ``--ema`` is on.

FER+ val accuracy swings by about a point from epoch to epoch at the end of a cosine schedule
(SGD noise on a small, label-noisy set); an average over the last few thousand steps is a
smoother, usually better, network at no cost at inference. BatchNorm statistics are averaged
with the weights (as timm's ModelEmaV2 does), so the averaged network is usable as is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self._avg = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def model(self) -> nn.Module:
        return self._avg.module

    def update(self, model: nn.Module) -> None:
        self._avg.update_parameters(model)

    def restart(self, model: nn.Module) -> None:
        """Start the average again from ``model`` (after BatchNorm recalibration: old statistics would linger)."""
        self.model.load_state_dict(model.state_dict())
        self._avg.n_averaged.zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The average's state (weights, buffers, steps averaged), for the resumable training state."""
        return self._avg.state_dict()

    def load(self, state: dict[str, torch.Tensor], model: nn.Module) -> None:
        """Restore from :meth:`state_dict`; an empty state (saved without an average) restarts it from ``model``."""
        if state:
            self._avg.load_state_dict(state)
        else:
            self.restart(model)
