"""A tiny CNN (about 25k parameters) for tests, smoke runs and the quickest experiments.

Not from a paper: two conv-BN-ReLU-pool stages and a linear classifier over global average
pooling.  It trains in seconds on a CPU, which keeps the test suite fast.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 7, width: int = 16, input_size: int = 48):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1, bias=False), nn.BatchNorm2d(4 * width),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("tiny", input_size=48, source="ferkit (test model)")
def tiny(num_classes: int = 7, **options) -> nn.Module:
    """Tiny 3-conv CNN for tests and smoke runs."""
    return TinyCNN(num_classes, **options)
