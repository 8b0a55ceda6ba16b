"""ferkit's own VGG-style network for 48x48 faces on a CPU budget.

Not from the seed papers: it follows the VGG recipe (Simonyan & Zisserman, 2015) that the
strongest public FER2013 single models use (e.g. Khaireddin & Chen, 2021, "Facial Emotion
Recognition: State of the Art Performance on FER2013"), sized so an epoch of FER2013 takes
about a minute and a half on 2 CPU cores with bf16 autocast.  Four stages of two
3x3 conv-BN-ReLU layers and a 2x2 max-pool, then two fully connected layers with dropout.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class VGGFer(nn.Module):
    def __init__(self, num_classes: int = 7, widths: tuple[int, ...] = (32, 64, 128, 256), fc: int = 2048,
                 dropout: float = 0.3, input_size: int = 44, in_channels: int = 1,
                 convs: tuple[int, ...] | None = None):
        super().__init__()
        convs = tuple(convs) if convs is not None else (2,) * len(widths)
        if len(convs) != len(widths) or min(convs) < 1:
            raise ValueError(f"convs {convs} must give one count >= 1 per stage of widths {tuple(widths)}")
        layers: list[nn.Module] = []
        cin = in_channels
        for width, count in zip(widths, convs):
            for _ in range(count):
                layers += conv_bn_relu(cin, width)
                cin = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = input_size
        for _ in widths:
            side //= 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin * side * side, fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("vgg_fer", input_size=44, source="ferkit (VGG-style, Khaireddin & Chen 2021 recipe)")
def vgg_fer(num_classes: int = 7, **options) -> nn.Module:
    """VGG-style 8-conv network for 44 px crops of 48 px faces; the shipped model's architecture."""
    return VGGFer(num_classes, **options)


@register_model("vgg_fer_wide", input_size=44, source="ferkit (VGG-style, Khaireddin & Chen 2021 recipe)")
def vgg_fer_wide(num_classes: int = 7, **options) -> nn.Module:
    """VGG-style network at 1.5x width (48-96-192-384): more accuracy per epoch, slower."""
    options.setdefault("widths", (48, 96, 192, 384))
    return VGGFer(num_classes, **options)


@register_model("vgg_fer_fast", input_size=44, source="ferkit (narrow VGG-style, for video and weak CPUs)")
def vgg_fer_fast(num_classes: int = 7, **options) -> nn.Module:
    """Narrow VGG-style network (16-32-64-128, one conv in the first stage, FC 512): about 0.8M
    parameters and about 4.5x the ONNX Runtime throughput of ``vgg_fer`` (``benchmarks/inference_engines.py``);
    the shipped ``fast`` model's architecture."""
    options.setdefault("widths", (16, 32, 64, 128))
    options.setdefault("convs", (1, 2, 2, 2))
    options.setdefault("fc", 512)
    return VGGFer(num_classes, **options)
