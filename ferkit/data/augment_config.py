"""Augmentation settings as plain data (no torch import: the CLI builds its options from it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AugmentConfig:
    """On-the-fly training augmentation: random flips, affine jitter, crops and erasing (plain data,
    saved in the run's config)."""

    flip: bool = True
    shift: float = 0.1  # fraction of the side, each direction
    rotate: float = 10.0  # degrees, each direction
    scale: float = 0.1  # zoom in or out by up to this fraction
    crop: int = 44  # output side; 48 keeps the full face
    erase_p: float = 0.5  # probability of one erased rectangle per image
    erase_min: int = 8
    erase_max: int = 20
