"""Seed 003: the CNN of Liang, Li, Liu & Liu, "Facial Emotion Recognition Using Deep Convolutional
Neural Network" (UW-Madison CS639), 65% on FER2013 (about 70% with augmentation).

The paper builds on Aayush Mishra's Kaggle "emotion-detector" model, "five CNN modules" with
"about 4.5 million parameters", batch normalisation and dropout; its Figure 3 (the layer diagram)
is not in the text.  We use that Kaggle model as it circulates in public copies: four
conv-BN-ReLU-maxpool-dropout modules (64 3x3, 128 5x5, 512 3x3, 512 3x3; ``same`` padding,
48 -> 3 px) and a fully connected module (256 and 512 units, each with BN, ReLU and dropout)
before the 7-way output: 4.48M parameters, matching the paper's figure.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import flat_size
from .registry import register_model


class CNN5(nn.Module):
    def __init__(self, num_classes: int = 7, widths: tuple[int, ...] = (64, 128, 512, 512),
                 kernels: tuple[int, ...] = (3, 5, 3, 3), fc: tuple[int, ...] = (256, 512),
                 dropout: float = 0.25, input_size: int = 48):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for width, kernel in zip(widths, kernels, strict=True):
            layers += [nn.Conv2d(cin, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(dropout)]
            cin = width
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        n = flat_size(self.features, input_size)
        for units in fc:
            head += [nn.Linear(n, units), nn.BatchNorm1d(units), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            n = units
        head.append(nn.Linear(n, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("cnn5", input_size=48, source="seed 003: Facial Emotion Recognition Using Deep Convolutional "
                "Neural Network", paper_params=4_500_000)
def cnn5(num_classes: int = 7, **options) -> nn.Module:
    """Five-module CNN (4 conv modules + FC module) with BN and dropout, after Mishra's Kaggle model."""
    return CNN5(num_classes, **options)
