"""Augmentation settings as plain data (no torch import: the CLI builds its options from it)."""
from __future__ import annotations

from dataclasses import dataclass

from ..options import option


@dataclass
class AugmentConfig:
    """On-the-fly training augmentation: random flips, affine jitter, crops and erasing (plain data,
    saved in the run's config)."""

    flip: bool = option(True, "mirror half the faces")
    vflip: bool = option(False, "turn half the faces upside down (seed 003 flips vertically too; faces are "
                                "never upside down in use, so off by default)")
    shift: float = option(0.1, "random shift, a fraction of the side in each direction")
    rotate: float = option(10.0, "random rotation, degrees in each direction")
    scale: float = option(0.1, "random zoom in or out by up to this fraction")
    crop: int = option(44, "random crop side; the network's input size decides it (44 for vgg_fer, else 48)")
    erase_p: float = option(0.5, "chance of one erased rectangle per face (random erasing)")
    erase_min: int = option(8, "smallest side of the erased rectangle, pixels")
    erase_max: int = option(20, "largest side of the erased rectangle, pixels")
