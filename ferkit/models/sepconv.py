"""Seed 001, model A: the depthwise-separable CNN of Liu, Zhang & Xin, "Face Expression Recognition
Based on Improved Convolutional Neural Network" (AIPR 2019), 73.2% on FER2013 PrivateTest.

What the paper fixes: an Xception-like (Chollet 2017) entry / middle / exit flow; 25 convolution
layers, of which 3 regular and 22 depthwise separable; two 3x3 convolutions and six separable ones
in the entry flow, whose output is 6x6x256; a middle flow of four repeated modules of three
separable convolutions at 6x6x256; an exit flow of separable convolutions and one spatial
convolution; PReLU, batch normalisation, max-pooling, global average pooling in place of the
fully connected layers, and 2,720,439 parameters in all.  The paper trains it on random 44x44
crops of the 48x48 faces, so its input size here is 44 (44 -> 22 -> 11 -> 6 with padded 3x3/2 pooling).

What it leaves open, filled in after Xception: residual shortcuts around every module (1x1
strided projections where the shape changes; Xception does not count them among its conv layers,
nor do we); the exit flow as Xception's: one module of two separable convolutions with a shortcut,
then two more separable convolutions (6 + 12 + 4 = 22); the spatial convolution is a 3x3 to 128
maps before the pooling, so that the 128-d pooled vector can feed the center loss the paper adds
to softmax; then dropout and one linear layer.  Widths 128-256-256 (entry) and 256-512-512-512
(exit) give 2.68M parameters, within 1.5% of the paper's figure.  PReLU has one slope per channel.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution, no bias (a BatchNorm follows)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def sep_bn(cin: int, cout: int) -> list[nn.Module]:
    return [SeparableConv2d(cin, cout), nn.BatchNorm2d(cout)]


class DownModule(nn.Module):
    """Xception entry/exit module: [PReLU] sep-BN-PReLU-sep-BN, 3x3/2 max-pool, + 1x1/2 shortcut."""

    def __init__(self, cin: int, mid: int, cout: int, pre_activation: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.PReLU(cin)] if pre_activation else []
        layers += sep_bn(cin, mid) + [nn.PReLU(mid)] + sep_bn(mid, cout)
        layers += [nn.MaxPool2d(3, stride=2, padding=1)]
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class MiddleModule(nn.Module):
    """Xception middle-flow module: three (PReLU, sep, BN) with an identity shortcut."""

    def __init__(self, channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(3):
            layers += [nn.PReLU(channels)] + sep_bn(channels, channels)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class SepConvNet(nn.Module):
    head_prefixes: tuple[str, ...] = ("fc.",)  # for --pretrained from a model trained on other faces

    def __init__(self, num_classes: int = 7, stem: tuple[int, int] = (32, 64),
                 entry: tuple[int, ...] = (128, 256, 256), middle_repeats: int = 4,
                 exit_widths: tuple[int, int, int, int] = (256, 512, 512, 512), features: int = 128,
                 dropout: float = 0.5, input_size: int = 44):
        super().__init__()
        s1, s2 = stem
        self.stem = nn.Sequential(
            nn.Conv2d(1, s1, 3, padding=1, bias=False), nn.BatchNorm2d(s1), nn.PReLU(s1),
            nn.Conv2d(s1, s2, 3, padding=1, bias=False), nn.BatchNorm2d(s2), nn.PReLU(s2),
        )
        modules, cin = [], s2
        for i, width in enumerate(entry):
            # The stem already ends in PReLU, so the first module does not repeat it (as in Xception).
            modules.append(DownModule(cin, width, width, pre_activation=i > 0))
            cin = width
        self.entry = nn.Sequential(*modules)
        self.middle = nn.Sequential(*[MiddleModule(cin) for _ in range(middle_repeats)])
        e1, e2, e3, e4 = exit_widths
        self.exit = nn.Sequential(
            DownModule(cin, e1, e2),
            *sep_bn(e2, e3), nn.PReLU(e3),
            *sep_bn(e3, e4), nn.PReLU(e4),
            nn.Conv2d(e4, features, 3, padding=1, bias=False), nn.BatchNorm2d(features), nn.PReLU(features),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector (``N x features``), e.g. for a center loss."""
        x = self.exit(self.middle(self.entry(self.stem(x))))
        return self.pool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(x)))

    def blocks(self) -> list[nn.Module]:
        return [self.stem, *self.entry, *self.middle, self.exit, self.fc]


@register_model("sepconv", input_size=44, source="seed 001: Face Expression Recognition Based on Improved "
                "Convolutional Neural Network", paper_params=2_720_439)
def sepconv(num_classes: int = 7, **options) -> nn.Module:
    """Model A: Xception-style depthwise-separable CNN, PReLU, BN, global average pooling."""
    return SepConvNet(num_classes, **options)
