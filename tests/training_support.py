"""Test-only pieces for the training tests: a model without batch norm, registered under a
test name, that remembers the instances it builds (so a test can read the weights a
process ended with, e.g. every rank of a torchrun job)."""
from __future__ import annotations

import torch.nn as nn

from ferkit.models import model_names, register_model

BUILT: list[nn.Module] = []


class SmallNet(nn.Module):
    """Two strided convolutions, global average pooling and a linear classifier.

    ``norm=False`` (the default) has no batch norm, so a DDP run equals the one-process run up
    to float rounding: batch norm normalises with each process's own slice of the batch.
    """

    def __init__(self, num_classes: int = 7, width: int = 8, norm: bool = False):
        super().__init__()
        norm_layer = (lambda c: nn.BatchNorm2d(c)) if norm else (lambda c: nn.Identity())
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1), norm_layer(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), norm_layer(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, num_classes)
        BUILT.append(self)

    def forward(self, x):
        return self.classifier(self.features(x))


if "test_small" not in model_names():
    @register_model("test_small", input_size=48, source="tests")
    def test_small(num_classes: int = 7, **options) -> nn.Module:
        """Small test CNN, batch norm optional."""
        return SmallNet(num_classes, **options)
