"""Feeding grayscale faces to ImageNet-style backbones.

The transfer models of the seed papers take 3-channel images: seed 002 (Russo et al.) repeats the
gray channel three times, seed 004 (Khaled et al.) feeds 224x224 images to EfficientNet-B1 and
seed 001 (Liu et al.) enlarges the faces 2x before its ResNet-50.  ``InputAdapter`` does both steps
inside the model, so every ferkit model still takes normalised gray faces ``N x 1 x S x S`` and the
training loop, test-time views and model files need not know about it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .superres import ESPCN, SRGenerator

UPSCALE_CHOICES = (None, "bilinear", "espcn", "srgan")


class InputAdapter(nn.Module):
    """Optional upscaling (bilinear, a learnable ESPCN 2x, or SRGAN's generator 2x), then gray -> 3 identical
    channels.

    ``size`` resizes to a fixed side (e.g. 224, as seed 004) instead of multiplying by ``scale``.
    Repeating the channel is equivalent to summing an ImageNet first-layer kernel over RGB, so
    ImageNet weights load unchanged.
    """

    def __init__(self, upscale: str | None = None, scale: int = 2, size: int | None = None):
        super().__init__()
        if upscale in ("none", ""):  # as spelled on the command line (``--model-option upscale=none``)
            upscale = None
        if upscale not in UPSCALE_CHOICES:
            raise ValueError(f"unknown upscale {upscale!r}: choose none, bilinear, espcn or srgan")
        if upscale in ("espcn", "srgan") and (scale != 2 or size is not None):
            raise ValueError(f"upscale={upscale!r} is a fixed 2x module: use scale=2 and no size")
        self.upscale, self.scale, self.size = upscale, int(scale), size
        # Only the learnable variants own weights (keys ``sr.*``); the others add no state.  An SRGAN generator
        # trained by ``ferkit superres`` is loaded here by ``train --superres``.
        self.sr = ESPCN(1, 2) if upscale == "espcn" else SRGenerator() if upscale == "srgan" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sr is not None:
            x = self.sr(x)
        elif self.upscale == "bilinear":
            if self.size is not None:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
            else:
                x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def extra_repr(self) -> str:
        return f"upscale={self.upscale}, scale={self.scale}, size={self.size}"
