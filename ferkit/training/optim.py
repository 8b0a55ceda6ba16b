"""Optimisers by name (the papers use Adam, AdaMax and SGD; AdamW and RAdam are modern defaults)."""
from __future__ import annotations

from typing import Iterable

import torch

from .config import OPTIMIZERS


def create_optimizer(name: str, params: Iterable, *, lr: float, weight_decay: float = 0.0,
                     momentum: float = 0.9, nesterov: bool = True) -> torch.optim.Optimizer:
    name = name.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                               weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "radam":
        return torch.optim.RAdam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
