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

    def validate(self) -> None:
        """ValueError naming the first ``--aug-*`` setting out of range."""
        checks = [
            (0 <= self.shift < 0.5, "--aug-shift must be in [0, 0.5): a fraction of the face's side"),
            (0 <= self.rotate <= 180, "--aug-rotate must be in [0, 180] degrees"),
            (0 <= self.scale < 1, "--aug-scale must be in [0, 1): a fraction of the face's size"),
            (1 <= self.crop, "--aug-crop must be at least 1"),
            (0 <= self.erase_p <= 1, "--aug-erase-p must be in [0, 1]"),
            (1 <= self.erase_min <= self.erase_max, "--aug-erase-min must be at least 1 and at most --aug-erase-max"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
