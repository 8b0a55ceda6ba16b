"""Seed 002: the two "hand-made" CNNs of "Emotion Detection in Human Faces' Low-resolution Images
Using Deep Neural Networks", before the authors turned to VGG transfer learning.

* ``cnn1`` (their figure 3): two convolution layers, each followed by max pooling and ReLU, then
  two fully connected layers.  "Same padding and stride ... weren't necessary", so none is used.
  SGD (momentum 0.8, rate 1e-4) gave them 26% on validation, their best hand-made result.
* ``cnn2`` (their figure 4): one more convolution + max pooling, and one more fully connected layer.

No batch norm, no dropout, no weight decay: the paper left them out because the networks did not
even fit the training set.  The figures' channel widths are not in the text; the widths here
(32-64, 32-64-128; 3x3 kernels; FC 128, FC 256-128) are ours, and each is an option.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import flat_size
from .registry import register_model

SOURCE = "seed 002: Emotion Detection in Human Faces' Low-resolution Images Using Deep Neural Networks"


class HandmadeCNN(nn.Module):
    """Unpadded 3x3 convolutions, each followed by 2x2 max pooling and ReLU, then ReLU-linked FC layers."""

    def __init__(self, num_classes: int = 7, widths: tuple[int, ...] = (32, 64), fc: tuple[int, ...] = (128,),
                 input_size: int = 48):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for width in widths:
            layers += [nn.Conv2d(cin, width, 3), nn.MaxPool2d(2), nn.ReLU(inplace=True)]
            cin = width
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        n = flat_size(self.features, input_size)
        for units in fc:
            head += [nn.Linear(n, units), nn.ReLU(inplace=True)]
            n = units
        head.append(nn.Linear(n, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("cnn1", input_size=48, source=SOURCE)
def cnn1(num_classes: int = 7, **options) -> nn.Module:
    """Seed 002's first CNN: 2 x (conv, max pool, ReLU), FC, FC."""
    return HandmadeCNN(num_classes, **{"widths": (32, 64), "fc": (128,), **options})


@register_model("cnn2", input_size=48, source=SOURCE)
def cnn2(num_classes: int = 7, **options) -> nn.Module:
    """Seed 002's second CNN: 3 x (conv, max pool, ReLU), FC, FC, FC."""
    return HandmadeCNN(num_classes, **{"widths": (32, 64, 128), "fc": (256, 128), **options})
