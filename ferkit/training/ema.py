"""Exponential moving average of a model's weights (Polyak averaging), evaluated in place of
the raw weights: a cheap, well-established gain for noisy SGD on small data."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class ModelEMA:
    """An exponential moving average of a model's weights (buffers copied), evaluated and saved in
    place of the raw weights when ``--ema`` is on."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Warm-up of the decay (as in timm/TF): early averages are not dominated by the init.
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.module.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - decay)
        for ema_b, b in zip(self.module.buffers(), model.buffers()):
            ema_b.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
