"""A small learnable 2x super-resolution module: ESPCN (Shi et al. 2016, "Real-Time Single Image
and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network").

Seed 001 (Liu, Zhang & Xin 2019, "Face Expression Recognition Based on Improved Convolutional
Neural Network") enlarges the 48x48 faces twice with SRGAN (Ledig et al. 2017) before its
ResNet-50.  An SRGAN generator is a 16-block network trained adversarially on a separate
high-resolution corpus that we do not have; ESPCN is the light stand-in: three convolutions at
low resolution and a sub-pixel (pixel-shuffle) layer, about 21k parameters, trained end to end
with the classifier.

It predicts a residual on top of bilinear upsampling, and its last convolution starts at zero, so
an untrained module is exactly bilinear upsampling and training can only add detail to it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ESPCN(nn.Module):
    """``N x C x H x W`` -> ``N x C x 2H x 2W`` (scale ``r``), ESPCN layout 5-3-3 with 64/32 maps."""

    def __init__(self, channels: int = 1, scale: int = 2, features: tuple[int, int] = (64, 32),
                 residual: bool = True):
        super().__init__()
        f1, f2 = features
        self.scale = scale
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(channels, f1, 5, padding=2), nn.Tanh(),
            nn.Conv2d(f1, f2, 3, padding=1), nn.Tanh(),
            nn.Conv2d(f2, channels * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)
        if residual:
            # Start as plain bilinear upsampling (see module docstring).
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.body(x))
        if self.residual:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out
