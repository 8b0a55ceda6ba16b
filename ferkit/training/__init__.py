"""Training engine: ``train(TrainConfig)``; see :mod:`ferkit.training.loop` for the loop.

Names are imported lazily so that reading a ``TrainConfig`` (as the CLI does to build its
options) does not import torch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["CheckpointError", "TrainConfig", "TrainingError", "train"]


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    if name == "CheckpointError":
        from .checkpoint import CheckpointError

        return CheckpointError
    if name in ("TrainingError", "train"):
        from . import loop as module

        return getattr(module, name)
    raise AttributeError(f"module 'ferkit.training' has no attribute {name!r}")
